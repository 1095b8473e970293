with

source as (
    select * from {{ source('shop', 'sms_consents') }}
),

renamed as (
    select
        customer_id,
        occurred_at,
        phone as phone_raw,
        phone_e164,
        status,
        status = 'opted_in' as is_opted_in,
        lower(coalesce(source, 'unknown')) as consent_source,
        scope,
        _partition as landed_on
    from source
)

select * from renamed
