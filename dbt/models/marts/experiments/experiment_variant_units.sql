-- Per arm of each experiment and flow holdout layer: its configured weight, the units
-- assigned to it and the units exposed (in all, and with each window complete as of as_of),
-- for the sample-ratio-mismatch check and progress toward the planned sample. Assigned units
-- check the randomization itself; exposed units check the analysed population, which an arm
-- can also shift by design when it changes whether or when a message goes out (a reminder
-- sent 7 rather than 3 days ahead reaches customers before some of them reorder).
with

assignments as (
    select * from {{ ref('experiment_assignments') }}
    where assigned_at <= {{ as_of() }}
),

units as (
    select * from {{ ref('experiment_unit_metrics') }}
),

experiments as (
    select experiment_key, flow, status, planned_units
    from {{ ref('stg_experiments__experiments') }}
),

holdouts as (
    select experiment_key, flow, share from {{ ref('stg_experiments__holdouts') }}
),

arms as (
    select
        variants.experiment_key,
        experiments.flow,
        false as is_holdout_layer,
        experiments.status,
        experiments.planned_units,
        variants.variant_key,
        variants.variant_index,
        variants.is_control,
        variants.weight
    from {{ ref('stg_experiments__variants') }} as variants
    inner join experiments on experiments.experiment_key = variants.experiment_key
    union all
    select
        experiment_key,
        flow,
        true,
        'running',
        cast(null as integer),
        'holdout',
        0,
        true,
        share
    from holdouts
    union all
    select
        experiment_key,
        flow,
        true,
        'running',
        cast(null as integer),
        'exposed',
        1,
        false,
        1 - share
    from holdouts
),

assigned as (
    select
        experiment_key,
        variant_key,
        count(*) as units_assigned
    from assignments
    group by experiment_key, variant_key
),

exposed as (
    select
        experiment_key,
        variant_key,
        count(*) as units_exposed,
        sum(case when is_complete_1d then 1 else 0 end) as units_complete_1d,
        sum(case when is_complete_7d then 1 else 0 end) as units_complete_7d,
        sum(case when is_complete_30d then 1 else 0 end) as units_complete_30d,
        sum(case when is_arm_consistent then 0 else 1 end) as units_arm_inconsistent,
        min(exposed_at) as first_exposed_at,
        max(exposed_at) as last_exposed_at
    from units
    group by experiment_key, variant_key
),

-- Only experiments that have assigned anyone (drafts and future ones have not).
counted as (
    select
        arms.experiment_key,
        arms.flow,
        arms.is_holdout_layer,
        arms.status,
        arms.planned_units,
        arms.variant_key,
        arms.variant_index,
        arms.is_control,
        arms.weight,
        coalesce(assigned.units_assigned, 0) as units_assigned,
        coalesce(exposed.units_exposed, 0) as units_exposed,
        coalesce(exposed.units_complete_1d, 0) as units_complete_1d,
        coalesce(exposed.units_complete_7d, 0) as units_complete_7d,
        coalesce(exposed.units_complete_30d, 0) as units_complete_30d,
        coalesce(exposed.units_arm_inconsistent, 0) as units_arm_inconsistent,
        exposed.first_exposed_at,
        exposed.last_exposed_at
    from arms
    left join assigned
        on assigned.experiment_key = arms.experiment_key
        and assigned.variant_key = arms.variant_key
    left join exposed
        on exposed.experiment_key = arms.experiment_key
        and exposed.variant_key = arms.variant_key
    where arms.experiment_key in (select experiment_key from assignments)
)

select * from counted
