-- Everything a customer did or received that an experiment metric counts, one row per event:
-- our messages delivered, real clicks on our links (not link previews), texts they sent us,
-- opt-outs (a STOP-like reply or the shop's own record) and orders that were not cancelled.
-- `flow` is the message's flow for deliveries and clicks; `amount` the order's total.
with

deliveries as (
    select
        customer_id,
        'delivered' as event_type,
        delivered_at as occurred_at,
        flow,
        idempotency_key as event_key,
        cast(null as {{ type_double() }}) as amount
    from {{ ref('int_messages_resolved') }}
    where delivered_at is not null
        and customer_id is not null
),

clicks as (
    select
        customer_id,
        'clicked' as event_type,
        clicked_at as occurred_at,
        flow,
        click_id as event_key,
        cast(null as {{ type_double() }}) as amount
    from {{ ref('int_link_clicks_resolved') }}
    where not is_link_preview
        and customer_id is not null
),

replies as (
    select
        customer_id,
        'replied' as event_type,
        received_at as occurred_at,
        cast(null as varchar) as flow,
        message_uuid as event_key,
        cast(null as {{ type_double() }}) as amount
    from {{ ref('int_replies_matched') }}
),

-- A reply revokes both scopes (two rows upstream): one opt-out per customer and moment.
opt_outs as (
    select distinct
        customer_id,
        'opted_out' as event_type,
        occurred_at,
        cast(null as varchar) as flow,
        cast(null as varchar) as event_key,
        cast(null as {{ type_double() }}) as amount
    from {{ ref('int_consent_events_unioned') }}
    where not is_opted_in
        and customer_id is not null
),

orders as (
    select
        customer_id,
        'ordered' as event_type,
        ordered_at as occurred_at,
        cast(null as varchar) as flow,
        order_id as event_key,
        cast(total_amount as {{ type_double() }}) as amount
    from {{ ref('stg_shop__orders') }}
    where not is_cancelled
        and ordered_at < {{ as_of() }}
        and customer_id is not null
),

unioned as (
    select * from deliveries
    union all
    select * from clicks
    union all
    select * from replies
    union all
    select * from opt_outs
    union all
    select * from orders
)

select * from unioned
