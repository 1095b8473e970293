with

source as (
    select * from {{ source('sms', 'sms_delivery_receipts') }}
),

renamed as (
    select
        message_uuid,
        status,
        occurred_at,
        sequence,
        error_code,
        units,
        total_rate,
        total_amount,
        mcc,
        mnc,
        _partition as landed_on
    from source
)

select * from renamed
