-- Where each customer is, for quiet hours: the time zones to respect and the state's window.
-- Shipping address first (the latest order's state), then the customer record; a state with
-- several zones keeps all of them, since a window must be open in every possible zone. When
-- neither is known the sender falls back to the phone number's zones.
with

customers as (
    select * from {{ ref('stg_shop__customers') }}
    where created_at < {{ as_of() }}
),

latest_shipping as (
    select
        customer_id,
        arg_max(shipping_region, ordered_at) as shipping_region
    from {{ ref('stg_shop__orders') }}
    where ordered_at < {{ as_of() }}
        and shipping_region is not null
        and coalesce(shipping_country, 'US') in ('US', 'USA')
    group by 1
),

states as (
    select * from {{ ref('us_states') }}
),

localized as (
    select
        customers.customer_id,
        customers.first_name,
        customers.phone_e164,
        customers.has_valid_phone,
        customers.country,
        coalesce(latest_shipping.shipping_region, customers.region) as state,
        case
            when customers.timezone is not null then customers.timezone
            else states.timezones
        end as timezones,
        case
            when customers.timezone is not null then 'customer record'
            when latest_shipping.shipping_region is not null and states.state is not null
                then 'shipping address'
            when states.state is not null then 'customer region'
            else 'phone number'
        end as timezone_source,
        coalesce(states.quiet_start_hour, 8) as quiet_start_hour,
        coalesce(states.quiet_end_hour, 21) as quiet_end_hour,
        states.marketing_max_per_24h as state_marketing_max_per_24h,
        customers.created_at
    from customers
    left join latest_shipping on latest_shipping.customer_id = customers.customer_id
    left join states
        on states.state = coalesce(latest_shipping.shipping_region, customers.region)
)

select * from localized
