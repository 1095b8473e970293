-- The message queue: every message that is due now or later and not yet handled, with the
-- experiment variant that decides its template and timing. Customers in a flow's holdout
-- stay in the queue flagged is_held_out: the sender records them as "would have been sent"
-- (after the same consent and quiet-hour checks) and sends nothing, which is what the
-- incremental-revenue analysis compares against.
with

triggered as (
    select * from {{ ref('int_messages_triggered') }}
),

flows as (
    select * from {{ ref('flows') }}
),

outbox as (
    select * from {{ ref('stg_ops__outbox') }}
),

assignments as (
    select * from {{ ref('experiment_assignments') }}
),

experiments as (
    select * from {{ ref('stg_experiments__experiments') }}
),

variants as (
    select * from {{ ref('stg_experiments__variants') }}
),

holdout_layers as (
    select * from {{ ref('stg_experiments__holdouts') }}
),

-- The running experiment of each flow (specs in one layer may not overlap in time).
active_variants as (
    select
        experiments.flow,
        assignments.unit_id as customer_id,
        experiments.experiment_key,
        variants.variant_key,
        variants.template,
        {{ json_number('variants.params', 'lead_days') }} as lead_days
    from assignments
    inner join experiments on experiments.experiment_key = assignments.experiment_key
    inner join variants
        on variants.experiment_key = assignments.experiment_key
        and variants.variant_key = assignments.variant_key
    where experiments.status = 'running'
        and experiments.starts_at <= {{ as_of() }}
        and (experiments.ends_at is null or experiments.ends_at > {{ as_of() }})
),

holdouts as (
    select assignments.flow, assignments.unit_id as customer_id
    from assignments
    inner join holdout_layers on holdout_layers.experiment_key = assignments.experiment_key
    where assignments.variant_key = 'holdout'
),

candidates as (
    select
        triggered.idempotency_key,
        triggered.flow,
        flows.message_class,
        triggered.customer_id,
        triggered.order_id,
        triggered.product_id,
        triggered.phone_e164,
        triggered.has_valid_phone,
        active_variants.experiment_key,
        active_variants.variant_key,
        coalesce(active_variants.template, 'default') as template,
        triggered.triggered_at,
        -- A variant's lead time moves the reminder; every other timing is the flow's own.
        case
            when triggered.flow = 'replenishment_reminder' and active_variants.lead_days is not null
                then greatest(
                    triggered.triggered_at,
                    {{ dbt.dateadd(
                        'day',
                        '-cast(active_variants.lead_days as integer)',
                        'cast(triggered.run_out_date as timestamp with time zone)'
                    ) }}
                )
            else triggered.earliest_send_at
        end as earliest_send_at,
        triggered.expires_at,
        flows.priority,
        holdouts.customer_id is not null and flows.message_class = 'marketing' as is_held_out,
        triggered.first_name,
        triggered.order_id as order_number,
        triggered.items_summary,
        triggered.tracking_url,
        triggered.product_title,
        triggered.run_out_date,
        triggered.setup_url
    from triggered
    inner join flows on flows.flow = triggered.flow
    left join active_variants
        on active_variants.flow = triggered.flow
        and active_variants.customer_id = triggered.customer_id
    left join holdouts
        on holdouts.flow = triggered.flow
        and holdouts.customer_id = triggered.customer_id
    left join outbox on outbox.idempotency_key = triggered.idempotency_key
    where outbox.idempotency_key is null
        and triggered.expires_at > {{ as_of() }}
)

select * from candidates
