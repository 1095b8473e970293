-- When each assigned unit was first exposed, per experiment and per flow holdout layer.
-- An experiment exposes a unit with the first message of its flow that carried the
-- experiment and went out; a unit its flow's holdout kept back is never exposed to it. A
-- holdout layer (holdout_<flow>) exposes its `exposed` arm with the first message of the flow
-- sent and its `holdout` arm with the first one that would have been sent (the outbox records
-- those as held_out, after the same consent, quiet-hour and frequency checks).
with

assignments as (
    select * from {{ ref('experiment_assignments') }}
    where assigned_at <= {{ as_of() }}
),

holdouts as (
    select experiment_key from {{ ref('stg_experiments__holdouts') }}
),

messages as (
    select * from {{ ref('int_messages_resolved') }}
    where customer_id is not null
),

experiment_exposures as (
    select
        assignments.experiment_key,
        assignments.unit_id,
        messages.idempotency_key,
        messages.sent_at,
        'sent' as exposure_state,
        messages.variant_key as message_variant_key
    from assignments
    inner join messages
        on messages.experiment_key = assignments.experiment_key
        and messages.flow = assignments.flow
        and messages.customer_id = assignments.unit_id
    where messages.is_sent
        and assignments.experiment_key not in (select experiment_key from holdouts)
),

holdout_exposures as (
    select
        assignments.experiment_key,
        assignments.unit_id,
        messages.idempotency_key,
        messages.sent_at,
        case when messages.is_held_out then 'held_out' else 'sent' end as exposure_state,
        case when messages.is_held_out then 'holdout' else 'exposed' end as message_variant_key
    from assignments
    inner join holdouts on holdouts.experiment_key = assignments.experiment_key
    inner join messages
        on messages.flow = assignments.flow
        and messages.customer_id = assignments.unit_id
),

candidates as (
    select * from experiment_exposures
    union all
    select * from holdout_exposures
),

ranked as (
    select
        *,
        row_number() over (
            partition by experiment_key, unit_id
            order by sent_at, idempotency_key
        ) as exposure_rank
    from candidates
),

exposures as (
    select
        assignments.experiment_key,
        assignments.layer,
        assignments.flow,
        assignments.experiment_key in (select experiment_key from holdouts) as is_holdout_layer,
        assignments.unit_id,
        assignments.variant_key,
        assignments.variant_index,
        assignments.is_control,
        assignments.assigned_at,
        ranked.sent_at as exposed_at,
        ranked.idempotency_key as exposure_idempotency_key,
        ranked.exposure_state,
        -- The arm the exposing message was sent under agrees with the assignment; false
        -- means the sender and the assignments disagree (a bug, or a holdout share changed).
        ranked.message_variant_key is null
        or ranked.message_variant_key = assignments.variant_key as is_arm_consistent
    from ranked
    inner join assignments
        on assignments.experiment_key = ranked.experiment_key
        and assignments.unit_id = ranked.unit_id
    where ranked.exposure_rank = 1
)

select * from exposures
