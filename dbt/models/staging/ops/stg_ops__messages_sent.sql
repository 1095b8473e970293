with

source as (
    select * from {{ source('ops', 'outbox') }}
),

renamed as (
    select
        idempotency_key,
        flow,
        message_class,
        customer_id,
        order_id,
        phone_e164,
        experiment_key,
        variant_key,
        state,
        provider,
        provider_message_uuid as message_uuid,
        -- The sender's logical time of the send (decided_at for rows never attempted).
        coalesce(sent_at, decided_at) as sent_at
    from source
)

select * from renamed
