-- Loyalty points earned by answering a feedback survey: one entry per credited answer (the
-- callback service credits each survey once, whatever Plivo retries or the customer sends
-- again), with the account's running balance. An account is the survey's customer, or the
-- number when the customer is unknown, as in the service's own store.
with

replies as (
    select * from {{ ref('inbound_replies') }}
    where action = 'score' and points > 0
),

surveys as (
    select idempotency_key, customer_id from {{ ref('stg_ops__messages_sent') }}
),

entries as (
    select
        replies.message_uuid as entry_id,
        coalesce(surveys.customer_id, replies.customer_id) as customer_id,
        replies.from_number_e164 as phone_e164,
        replies.survey_key,
        replies.score,
        replies.points,
        replies.received_at as earned_at
    from replies
    left join surveys on surveys.idempotency_key = replies.survey_key
),

final as (
    select
        entry_id,
        coalesce(customer_id, phone_e164) as account,
        customer_id,
        phone_e164,
        survey_key,
        score,
        points,
        earned_at,
        sum(points) over (
            partition by coalesce(customer_id, phone_e164)
            order by earned_at, entry_id
            rows between unbounded preceding and current row
        ) as balance_after
    from entries
)

select * from final
