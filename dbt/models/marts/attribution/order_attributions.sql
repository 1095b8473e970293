{#
    Which message, if any, gets the credit for each order: the customer's last click on one of
    our links within `attribution_click_window_days` (default 5) before the order, else the last
    of our messages delivered to them within `attribution_delivery_window_hours` (default 24)
    before it. Last touch is a reporting convention, not a causal estimate: the holdout
    comparison in flow_incremental_revenue measures what a flow really adds.
#}
with

orders as (
    select
        order_id,
        customer_id,
        ordered_at,
        currency,
        cast(total_amount as {{ type_double() }}) as total_amount,
        is_cancelled
    from {{ ref('stg_shop__orders') }}
    where ordered_at < {{ as_of() }}
),

clicks as (
    select * from {{ ref('int_link_clicks_resolved') }}
    where not is_link_preview
),

deliveries as (
    select * from {{ ref('int_messages_resolved') }}
    where delivered_at is not null
),

-- Every touch that may claim an order; a click outranks any delivery, then the latest wins.
touches as (
    select
        orders.order_id,
        'last_click' as attribution_rule,
        1 as rule_rank,
        clicks.clicked_at as touched_at,
        clicks.click_id,
        clicks.idempotency_key
    from orders
    inner join clicks
        on clicks.customer_id = orders.customer_id
        and clicks.clicked_at <= orders.ordered_at
        and clicks.clicked_at >= {{ dbt.dateadd(
            'day', -var('attribution_click_window_days'), 'orders.ordered_at'
        ) }}
    union all
    select
        orders.order_id,
        'last_delivery' as attribution_rule,
        2 as rule_rank,
        deliveries.delivered_at as touched_at,
        cast(null as varchar) as click_id,
        deliveries.idempotency_key
    from orders
    inner join deliveries
        on deliveries.customer_id = orders.customer_id
        and deliveries.delivered_at <= orders.ordered_at
        and deliveries.delivered_at >= {{ dbt.dateadd(
            'hour', -var('attribution_delivery_window_hours'), 'orders.ordered_at'
        ) }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by order_id
            order by rule_rank, touched_at desc, idempotency_key desc, click_id desc
        ) as touch_rank
    from touches
),

messages as (
    select * from {{ ref('int_messages_resolved') }}
),

attributed as (
    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.currency,
        orders.total_amount,
        orders.is_cancelled,
        ranked.order_id is not null as is_attributed,
        ranked.attribution_rule,
        ranked.idempotency_key as message_idempotency_key,
        messages.flow,
        messages.message_class,
        messages.experiment_key,
        messages.variant_key,
        messages.sent_at as message_sent_at,
        messages.delivered_at as message_delivered_at,
        ranked.click_id,
        ranked.touched_at,
        {{ dbt.datediff('ranked.touched_at', 'orders.ordered_at', 'second') }} / 3600.0
            as hours_from_touch_to_order,
        case
            when ranked.order_id is not null and not orders.is_cancelled
                then orders.total_amount
            else 0
        end as attributed_revenue
    from orders
    left join ranked
        on ranked.order_id = orders.order_id
        and ranked.touch_rank = 1
    left join messages on messages.idempotency_key = ranked.idempotency_key
)

select * from attributed
