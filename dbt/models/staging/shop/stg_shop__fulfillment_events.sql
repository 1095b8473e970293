with

source as (
    select * from {{ source('shop', 'fulfillment_events') }}
),

renamed as (
    select
        shipment_id,
        status,
        occurred_at,
        order_id,
        carrier,
        tracking_number,
        tracking_url,
        estimated_delivery_at,
        _partition as landed_on
    from source
)

select * from renamed
