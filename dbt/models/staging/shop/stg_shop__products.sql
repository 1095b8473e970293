with

source as (
    select * from {{ source('shop', 'products') }}
),

renamed as (
    select
        product_id,
        title,
        lower(coalesce(category, 'uncategorized')) as category,
        price,
        upper(currency) as currency,
        coalesce(is_consumable, false) as is_consumable,
        usage_days,
        coalesce(needs_setup, false) as needs_setup,
        review_delay_days,
        setup_url,
        updated_at,
        _partition as landed_on
    from source
)

select * from renamed
