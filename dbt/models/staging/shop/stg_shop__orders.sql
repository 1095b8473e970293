with

source as (
    select * from {{ source('shop', 'orders') }}
),

renamed as (
    select
        order_id,
        customer_id,
        ordered_at,
        upper(currency) as currency,
        total_amount,
        coalesce(fulfillment_type, 'physical') as fulfillment_type,
        shipping_postal_code,
        upper(shipping_region) as shipping_region,
        shipping_city,
        upper(shipping_country) as shipping_country,
        lower(coalesce(status, 'unknown')) as status,
        -- Shops spell it both ways.
        lower(coalesce(status, '')) in ('cancelled', 'canceled') as is_cancelled,
        coalesce(updated_at, ordered_at) as updated_at,
        _partition as landed_on
    from source
)

select * from renamed
