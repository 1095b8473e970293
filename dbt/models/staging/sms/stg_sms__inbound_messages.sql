with

source as (
    select * from {{ source('sms', 'inbound_messages') }}
),

renamed as (
    select
        message_uuid,
        from_number as from_number_raw,
        from_number_e164,
        to_number_e164,
        text,
        -- Keyword matching happens downstream; this is the comparable form.
        trim(regexp_replace(lower(coalesce(text, '')), '\s+', ' ', 'g')) as text_normalized,
        received_at,
        lower(intent) as plivo_intent,
        _partition as landed_on
    from source
)

select * from renamed
