-- Orders known at the logical time, with what a message about them needs: the items in a
-- line of text, whether anything needs setup, and how long to wait before asking for a review.
with

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where ordered_at < {{ as_of() }}
),

lines as (
    select * from {{ ref('stg_shop__order_lines') }}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

lines_with_products as (
    select
        lines.order_id,
        lines.line_id,
        lines.quantity,
        lines.line_amount,
        products.product_id,
        coalesce(products.title, lines.product_id) as title,
        products.category,
        coalesce(products.needs_setup, false) as needs_setup,
        products.setup_url,
        -- Long-use categories need longer before a fair review (DESIGN section 5).
        coalesce(
            products.review_delay_days,
            case when products.category in ('skincare', 'beauty') then 14 else 6 end
        ) as review_delay_days
    from lines
    left join products on products.product_id = lines.product_id
),

per_order as (
    select
        order_id,
        count(*) as line_count,
        sum(quantity) as item_count,
        string_agg(
            case when quantity > 1 then cast(quantity as varchar) || 'x ' || title else title end,
            ', '
            order by line_amount desc, line_id
        ) as items_summary,
        arg_max(title, line_amount) as top_product_title,
        arg_max(product_id, line_amount) as top_product_id,
        bool_or(needs_setup) as needs_setup,
        max(case when needs_setup then setup_url end) as setup_url,
        max(review_delay_days) as review_delay_days
    from lines_with_products
    group by 1
),

summarized as (
    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.currency,
        orders.total_amount,
        orders.fulfillment_type,
        orders.fulfillment_type = 'digital' as is_digital,
        orders.shipping_region,
        orders.shipping_country,
        orders.status,
        orders.is_cancelled,
        coalesce(per_order.line_count, 0) as line_count,
        coalesce(per_order.item_count, 0) as item_count,
        per_order.items_summary,
        per_order.top_product_id,
        per_order.top_product_title,
        coalesce(per_order.needs_setup, false) as needs_setup,
        per_order.setup_url,
        coalesce(per_order.review_delay_days, 6) as review_delay_days,
        row_number() over (partition by orders.customer_id order by orders.ordered_at)
            as customer_order_number
    from orders
    left join per_order on per_order.order_id = orders.order_id
)

select * from summarized
