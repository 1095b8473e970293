with

source as (
    select * from {{ source('ops', 'outbox') }}
),

renamed as (
    select
        idempotency_key,
        flow,
        customer_id,
        state,
        decided_at
    from source
)

select * from renamed
