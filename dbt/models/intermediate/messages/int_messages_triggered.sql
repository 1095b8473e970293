-- Every message a flow's trigger calls for, before experiments, holdouts and the outbox:
-- one row per (flow, order or shipment or customer, step) with its deterministic
-- idempotency key, when it may go out at the earliest, and when it becomes pointless.
-- Rules and delays are DESIGN section 5; experiments may change them in message_candidates.
-- A table, not a view: the queue and the data tests each read it, and as a view the whole
-- union over every order ever placed ran three times per build (a third of the build at
-- 100,000 customers).
{{ config(materialized='table') }}

with

orders as (
    select * from {{ ref('int_orders_summarized') }}
),

shipments as (
    select * from {{ ref('int_shipments_tracked') }}
),

customers as (
    select * from {{ ref('int_customers_localized') }}
),

predictions as (
    select * from {{ ref('replenishment_predictions') }}
),

-- A shipment's order, and for multi-shipment orders each shipment speaks for itself.
shipped_orders as (
    select
        shipments.*,
        orders.customer_id,
        orders.items_summary,
        orders.top_product_title,
        orders.needs_setup,
        orders.setup_url,
        orders.review_delay_days,
        orders.customer_order_number
    from shipments
    inner join orders on orders.order_id = shipments.order_id
    where not orders.is_cancelled
        and not orders.is_digital
),

order_confirmation as (
    select
        'order_confirmation' as flow,
        'order_confirmation:' || order_id as idempotency_key,
        customer_id,
        order_id,
        cast(null as varchar) as product_id,
        ordered_at as triggered_at,
        ordered_at as earliest_send_at,
        {{ dbt.dateadd('hour', 24, 'ordered_at') }} as expires_at,
        items_summary,
        cast(null as varchar) as tracking_url,
        top_product_title as product_title,
        cast(null as date) as run_out_date,
        cast(null as varchar) as setup_url
    from orders
    where not is_cancelled
),

shipping_update as (
    select
        'shipping_update', 'shipping_update:' || shipment_id, customer_id, order_id, null,
        shipped_at, shipped_at,
        coalesce(out_for_delivery_at, delivered_at, {{ dbt.dateadd('day', 5, 'shipped_at') }}),
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where shipped_at is not null
),

out_for_delivery as (
    select
        'out_for_delivery', 'out_for_delivery:' || shipment_id, customer_id, order_id, null,
        out_for_delivery_at, out_for_delivery_at,
        -- After delivery an "arriving today" text is noise.
        coalesce(delivered_at, {{ dbt.dateadd('hour', 12, 'out_for_delivery_at') }}),
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where out_for_delivery_at is not null
),

delivered as (
    select
        'delivered', 'delivered:' || shipment_id, customer_id, order_id, null,
        delivered_at, delivered_at, {{ dbt.dateadd('day', 2, 'delivered_at') }},
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where delivered_at is not null
),

setup_onboarding as (
    select
        'setup_onboarding', 'setup_onboarding:' || shipment_id, customer_id, order_id, null,
        delivered_at, {{ dbt.dateadd('hour', 4, 'delivered_at') }},
        {{ dbt.dateadd('day', 7, 'delivered_at') }},
        items_summary, tracking_url, top_product_title, null, setup_url
    from shipped_orders
    where delivered_at is not null and needs_setup
),

review_request as (
    select
        'review_request', 'review_request:' || order_id, customer_id, order_id, null,
        delivered_at, {{ dbt.dateadd('day', 'review_delay_days', 'delivered_at') }},
        coalesce(returned_at, {{ dbt.dateadd('day', 'review_delay_days + 7', 'delivered_at') }}),
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where delivered_at is not null
),

loyalty_invite as (
    select
        'loyalty_invite', 'loyalty_invite:' || customer_id, customer_id, order_id, null,
        delivered_at, {{ dbt.dateadd('day', 1, 'delivered_at') }},
        {{ dbt.dateadd('day', 15, 'delivered_at') }},
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where delivered_at is not null and returned_at is null and customer_order_number <= 2
    -- Once per customer: the earliest qualifying delivery speaks.
    qualify row_number() over (partition by customer_id order by delivered_at) = 1
),

feedback_survey as (
    select
        'feedback_survey', 'feedback_survey:' || order_id, customer_id, order_id, null,
        delivered_at, {{ dbt.dateadd('day', 3, 'delivered_at') }},
        coalesce(returned_at, {{ dbt.dateadd('day', 10, 'delivered_at') }}),
        items_summary, tracking_url, top_product_title, null, null
    from shipped_orders
    where delivered_at is not null
),

-- A reminder belongs to one purchase cycle: a reorder starts a new cycle with a new key, so
-- the old reminder is withdrawn by construction.
replenishment_reminder as (
    select
        'replenishment_reminder',
        'replenishment_reminder:' || customer_id || ':' || product_id || ':'
            || cast(last_purchase_date as varchar),
        customer_id, null, product_id,
        cast(last_purchase_date as timestamp with time zone),
        cast(reminder_date as timestamp with time zone),
        {{ dbt.dateadd('day', 7, 'cast(predicted_next_date as timestamp with time zone)') }},
        null, null, title, predicted_next_date, null
    from predictions
    where is_consumable
),

unioned as (
    select * from order_confirmation
    union all select * from shipping_update
    union all select * from out_for_delivery
    union all select * from delivered
    union all select * from setup_onboarding
    union all select * from review_request
    union all select * from loyalty_invite
    union all select * from feedback_survey
    union all select * from replenishment_reminder
)

select
    unioned.*,
    customers.first_name,
    customers.phone_e164,
    customers.has_valid_phone
from unioned
inner join customers on customers.customer_id = unioned.customer_id
