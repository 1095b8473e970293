with

source as (
    select * from {{ source('shop', 'order_lines') }}
),

renamed as (
    select
        order_id,
        line_id,
        product_id,
        quantity,
        unit_price,
        quantity * unit_price as line_amount,
        _partition as landed_on
    from source
)

select * from renamed
