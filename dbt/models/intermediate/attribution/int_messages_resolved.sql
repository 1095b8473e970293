-- Every message that went out, or that a flow's holdout kept back, with when it was sent (or
-- would have been) and when it was delivered. "Went out": the outbox says sent, or a
-- delivery receipt exists for its provider uuid (an attempt left `unknown` that the provider
-- did take). Failed, suppressed and still-unknown attempts never reached anyone.
with

outbox as (
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
        message_uuid,
        -- Logical times (the hour the sender ran for), comparable between sent and held out.
        sent_at
    from {{ ref('stg_ops__messages_sent') }}
    where state in ('sent', 'held_out', 'unknown', 'sending')
        and sent_at < {{ as_of() }}
),

receipts as (
    select
        message_uuid,
        min(case when lower(status) = 'delivered' then occurred_at end) as delivered_at
    from {{ ref('stg_sms__delivery_receipts') }}
    where occurred_at < {{ as_of() }}
    group by message_uuid
),

resolved as (
    select
        outbox.idempotency_key,
        outbox.flow,
        outbox.message_class,
        outbox.customer_id,
        outbox.order_id,
        outbox.phone_e164,
        outbox.experiment_key,
        outbox.variant_key,
        outbox.state,
        outbox.message_uuid,
        outbox.state = 'held_out' as is_held_out,
        outbox.state = 'sent' or receipts.message_uuid is not null as is_sent,
        outbox.sent_at,
        receipts.delivered_at
    from outbox
    left join receipts on receipts.message_uuid = outbox.message_uuid
)

select * from resolved
where is_held_out or is_sent
