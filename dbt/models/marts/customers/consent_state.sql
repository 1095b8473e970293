-- The consent each customer's phone has now, per scope, and when and why it last changed.
-- On a tie the opt-out wins: when in doubt, do not text.
with

customers as (
    select customer_id, phone_e164 from {{ ref('stg_shop__customers') }}
    where created_at < {{ as_of() }}
),

events as (
    select * from {{ ref('int_consent_events_unioned') }}
),

latest as (
    select
        customer_id,
        scope,
        is_opted_in,
        occurred_at,
        reason
    from events
    qualify row_number() over (
        partition by customer_id, scope order by occurred_at desc, is_opted_in asc
    ) = 1
),

consent as (
    select
        customers.customer_id,
        customers.phone_e164,
        coalesce(tx.is_opted_in, false) as transactional_consent,
        coalesce(mk.is_opted_in, false) as marketing_consent,
        -- Written marketing consent also covers the order's own transactional texts.
        coalesce(tx.is_opted_in, false) or coalesce(mk.is_opted_in, false)
            as can_receive_transactional,
        coalesce(mk.is_opted_in, false) as can_receive_marketing,
        tx.occurred_at as transactional_changed_at,
        coalesce(tx.reason, 'no consent on record') as transactional_reason,
        mk.occurred_at as marketing_changed_at,
        coalesce(mk.reason, 'no consent on record') as marketing_reason,
        greatest(tx.occurred_at, mk.occurred_at) as last_changed_at,
        case
            when mk.occurred_at is null and tx.occurred_at is null then 'no consent on record'
            when tx.occurred_at is null or mk.occurred_at >= tx.occurred_at then mk.reason
            else tx.reason
        end as last_change_reason
    from customers
    left join latest as tx on tx.customer_id = customers.customer_id and tx.scope = 'transactional'
    left join latest as mk on mk.customer_id = customers.customer_id and mk.scope = 'marketing'
)

select * from consent
