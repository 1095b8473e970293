-- One row per customer, product and day bought: the events the cadence model learns from.
-- Cancelled orders and non-positive quantities are not purchases; nothing after the logical
-- time is visible, so a backfill sees exactly what was known that day.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where not is_cancelled
        and ordered_at < {{ as_of() }}
),

lines as (
    select * from {{ ref('stg_shop__order_lines') }}
    where quantity > 0
),

purchases as (
    select
        orders.customer_id,
        lines.product_id,
        cast(orders.ordered_at as date) as purchase_date,
        sum(lines.quantity) as quantity,
        sum(lines.line_amount) as amount
    from orders
    inner join lines on lines.order_id = orders.order_id
    group by 1, 2, 3
)

select * from purchases
