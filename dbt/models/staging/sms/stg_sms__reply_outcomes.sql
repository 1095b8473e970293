with

source as (
    select * from {{ source('sms', 'inbound_messages') }}
),

renamed as (
    select
        message_uuid,
        lower(action) as action,
        survey_key,
        score,
        points
    from source
)

select * from renamed
