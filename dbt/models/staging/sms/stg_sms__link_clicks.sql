with

source as (
    select * from {{ source('sms', 'link_clicks') }}
),

renamed as (
    select
        click_id,
        short_code,
        clicked_at,
        user_agent,
        _partition as landed_on
    from source
)

select * from renamed
