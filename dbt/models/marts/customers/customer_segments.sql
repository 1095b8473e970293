-- Who each customer is now: lifecycle judged against their own expected cadence, RFM scores,
-- fulfillment type, category affinity, where they are and what they consented to.
with

customers as (
    select * from {{ ref('int_customers_localized') }}
),

orders as (
    select * from {{ ref('int_orders_summarized') }}
    where not is_cancelled
),

consent as (
    select * from {{ ref('consent_state') }}
),

per_customer as (
    select
        customer_id,
        count(*) as order_count,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        sum(total_amount) as revenue,
        count(case when is_digital then 1 end) as digital_orders,
        count(case when not is_digital then 1 end) as physical_orders
    from orders
    group by 1
),

-- The shop-wide typical gap between orders, the prior a customer's own gaps are shrunk to.
shop_gap as (
    select coalesce(
        median({{ dbt.datediff('first_order_at', 'last_order_at', 'day') }} / (order_count - 1)),
        30
    ) as median_gap_days
    from per_customer
    where order_count > 1
),

category_spend as (
    select
        orders.customer_id,
        products.category,
        sum(lines.line_amount) as spend
    from orders
    inner join {{ ref('stg_shop__order_lines') }} as lines on lines.order_id = orders.order_id
    inner join {{ ref('stg_shop__products') }} as products
        on products.product_id = lines.product_id
    group by 1, 2
),

top_category as (
    select customer_id, category as top_category
    from category_spend
    qualify row_number() over (partition by customer_id order by spend desc, category) = 1
),

cadence as (
    select
        per_customer.*,
        {{ dbt.datediff('per_customer.last_order_at', as_of(), 'day') }} as days_since_last_order,
        -- Two pseudo-gaps of prior: one repeat order moves the expectation only part way.
        (
            {{ dbt.datediff('first_order_at', 'last_order_at', 'day') }}
            + 2 * shop_gap.median_gap_days
        ) / (order_count - 1 + 2) as expected_gap_days
    from per_customer
    cross join shop_gap
),

scored as (
    select
        cadence.*,
        ntile(5) over (order by days_since_last_order desc) as recency_score,
        ntile(5) over (order by order_count) as frequency_score,
        ntile(5) over (order by revenue) as monetary_score
    from cadence
),

segments as (
    select
        customers.customer_id,
        case
            when scored.customer_id is null then 'prospect'
            when scored.days_since_last_order > 3 * scored.expected_gap_days then 'lapsed'
            when scored.days_since_last_order > 1.5 * scored.expected_gap_days then 'at_risk'
            when scored.order_count >= 4 then 'loyal'
            when scored.order_count >= 2 then 'repeat'
            else 'new'
        end as lifecycle_stage,
        coalesce(scored.order_count, 0) as order_count,
        scored.first_order_at,
        scored.last_order_at,
        scored.days_since_last_order,
        scored.expected_gap_days,
        coalesce(scored.revenue, 0) as revenue,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        cast(scored.recency_score as varchar) || cast(scored.frequency_score as varchar)
            || cast(scored.monetary_score as varchar) as rfm_segment,
        case
            when scored.customer_id is null then 'none'
            when scored.digital_orders > 0 and scored.physical_orders > 0 then 'mixed'
            when scored.digital_orders > 0 then 'digital'
            else 'physical'
        end as fulfillment_type,
        top_category.top_category as category_affinity,
        customers.state as region,
        customers.timezones,
        customers.timezone_source,
        case
            when consent.can_receive_marketing then 'marketing'
            when consent.can_receive_transactional then 'transactional'
            else 'none'
        end as consent_scope,
        customers.has_valid_phone
    from customers
    left join scored on scored.customer_id = customers.customer_id
    left join top_category on top_category.customer_id = customers.customer_id
    left join consent on consent.customer_id = customers.customer_id
)

select * from segments
