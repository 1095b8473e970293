with

source as (
    select * from {{ source('shop', 'customers') }}
),

renamed as (
    select
        customer_id,
        first_name,
        email,
        phone as phone_raw,
        phone_e164,
        coalesce(phone_valid, false) as has_valid_phone,
        created_at,
        postal_code,
        upper(region) as region,
        upper(coalesce(country, 'US')) as country,
        timezone,
        updated_at,
        _partition as landed_on
    from source
)

select * from renamed
