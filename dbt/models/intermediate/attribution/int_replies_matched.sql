-- Every text a customer sent us, matched to the customer by phone number. Replies carry no
-- reference to the message they answer, so they belong to the customer, not to a message.
with

inbound as (
    select
        message_uuid,
        from_number_e164,
        received_at,
        text_normalized
    from {{ ref('stg_sms__inbound_messages') }}
    where received_at < {{ as_of() }}
),

customers as (
    select
        customer_id,
        phone_e164
    from {{ ref('stg_shop__customers') }}
    where phone_e164 is not null
),

matched as (
    select
        inbound.message_uuid,
        customers.customer_id,
        inbound.received_at,
        inbound.text_normalized
    from inbound
    inner join customers on customers.phone_e164 = inbound.from_number_e164
)

select * from matched
