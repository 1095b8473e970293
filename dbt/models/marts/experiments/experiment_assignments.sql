{#
    Who is in which arm of which experiment, and of which flow's holdout. Incremental and
    immutable: a run only adds units not yet assigned, so editing a spec's weights (or a
    holdout's share) never moves a unit already assigned. Exposure (who actually got a
    message) is measured later, from the outbox. `--full-refresh` is ignored here: rebuilding
    would re-split every unit by today's weights.
#}
{{
    config(
        materialized='incremental',
        unique_key=['experiment_key', 'unit_id'],
        on_schema_change='fail',
        full_refresh=false
    )
}}

with

customers as (
    select
        customer_id,
        created_at
    from {{ ref('stg_shop__customers') }}
    where created_at <= {{ as_of() }}
),

-- Only running experiments take new units: a stopped or shipped one keeps the rows it has.
-- Units that arrive after an experiment's end_date are never assigned to it.
experiments as (
    select
        experiment_key,
        layer,
        flow,
        unit_type,
        salt,
        ends_at
    from {{ ref('stg_experiments__experiments') }}
    where status = 'running'
        and starts_at <= {{ as_of() }}
),

holdouts as (
    select * from {{ ref('stg_experiments__holdouts') }}
),

-- Every customer is in each marketing flow's holdout layer, as held out or exposed.
layers as (
    select experiment_key, layer, flow, unit_type, salt, ends_at
    from experiments
    union all
    select
        experiment_key,
        layer,
        flow,
        'customer' as unit_type,
        salt,
        cast(null as timestamp with time zone) as ends_at
    from holdouts
),

arms as (
    select experiment_key, variant_key, variant_index, is_control, bucket_start, bucket_end
    from {{ ref('stg_experiments__variants') }}
    union all
    select experiment_key, 'holdout', 0, true, 0, holdout_bucket_end
    from holdouts
    union all
    select experiment_key, 'exposed', 1, false, holdout_bucket_end, 10000
    from holdouts
),

candidates as (
    select
        layers.experiment_key,
        layers.layer,
        layers.flow,
        layers.unit_type,
        customers.customer_id as unit_id,
        {{ bucket_of('layers.salt', 'customers.customer_id') }} as bucket
    from layers
    inner join customers
        on layers.ends_at is null or customers.created_at < layers.ends_at
    {% if is_incremental() %}
    where not exists (
        select 1
        from {{ this }} as assigned
        where assigned.experiment_key = layers.experiment_key
            and assigned.unit_id = customers.customer_id
    )
    {% endif %}
),

assigned as (
    select
        candidates.experiment_key,
        candidates.layer,
        candidates.flow,
        candidates.unit_type,
        candidates.unit_id,
        candidates.bucket,
        arms.variant_key,
        arms.variant_index,
        arms.is_control,
        {{ as_of() }} as assigned_at
    from candidates
    inner join arms
        on arms.experiment_key = candidates.experiment_key
        and candidates.bucket >= arms.bucket_start
        and candidates.bucket < arms.bucket_end
)

select * from assigned
