-- Per flow: how many texts went out and what share was delivered, clicked, answered and
-- followed by an opt-out. Click, reply and opt-out rates are over delivered messages (a text
-- that never arrived cannot be clicked); delivery rate is over messages sent.
with

messages as (
    select * from {{ ref('message_engagement') }}
),

counted as (
    select
        flow,
        count(*) as messages_sent,
        sum(case when is_delivered then 1 else 0 end) as messages_delivered,
        sum(case when is_delivered and is_clicked then 1 else 0 end) as messages_clicked,
        sum(case when is_delivered and is_replied then 1 else 0 end) as messages_replied,
        sum(case when is_delivered and is_opted_out then 1 else 0 end) as messages_opted_out,
        min(sent_at) as first_sent_at,
        max(sent_at) as last_sent_at
    from messages
    group by 1
),

final as (
    select
        flow,
        messages_sent,
        messages_delivered,
        messages_clicked,
        messages_replied,
        messages_opted_out,
        1.0 * messages_delivered / nullif(messages_sent, 0) as delivery_rate,
        1.0 * messages_clicked / nullif(messages_delivered, 0) as click_through_rate,
        1.0 * messages_replied / nullif(messages_delivered, 0) as reply_rate,
        1.0 * messages_opted_out / nullif(messages_delivered, 0) as opt_out_rate,
        first_sent_at,
        last_sent_at
    from counted
)

select * from final
