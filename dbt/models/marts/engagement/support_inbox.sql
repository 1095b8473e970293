-- The brand's support inbox: texts that are no keyword and no survey answer, with who sent
-- them and what they were answering. The service sends no automatic answer to these.
with

replies as (
    select * from {{ ref('inbound_replies') }}
),

final as (
    select
        message_uuid,
        received_at,
        from_number_e164,
        customer_id,
        first_name,
        text,
        in_reply_to_flow,
        in_reply_to_key
    from replies
    where action = 'text'
)

select * from final
