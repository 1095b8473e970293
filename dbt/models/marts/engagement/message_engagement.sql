-- One row per message sent: where its delivery ended, and whether it was clicked, answered and
-- followed by an opt-out. A message's status is its receipt with the highest Plivo `Sequence`
-- (receipts arrive out of order and repeated); receipts without a sequence (a legacy export)
-- fall back to final-before-interim, then the latest time.
with

sent as (
    select * from {{ ref('stg_ops__messages_sent') }}
    where state = 'sent' and message_uuid is not null and sent_at < {{ as_of() }}
),

receipts as (
    select * from {{ ref('stg_sms__delivery_receipts') }}
    where occurred_at < {{ as_of() }}
),

latest_status as (
    select
        message_uuid,
        status,
        error_code,
        occurred_at as status_at
    from receipts
    qualify row_number() over (
        partition by message_uuid
        order by
            sequence desc nulls last,
            case status when 'queued' then 1 when 'sent' then 2 else 3 end desc,
            occurred_at desc
    ) = 1
),

links as (
    select * from {{ ref('stg_ops__short_links') }}
),

-- Link previews (iMessage, chat apps) fetch the URL without a person: not a click.
clicks as (
    select
        links.idempotency_key,
        count(*) as clicks,
        min(c.clicked_at) as first_clicked_at
    from {{ ref('stg_sms__link_clicks') }} as c
    inner join links on links.code = c.short_code
    where c.clicked_at < {{ as_of() }}
        -- The same test the experiment metrics use, so click rates agree everywhere.
        and not {{ is_link_preview('c.user_agent') }}
    group by 1
),

replies as (
    select
        in_reply_to_key as idempotency_key,
        count(*) as replies,
        min(received_at) as first_replied_at,
        max(case when action = 'opt_out' then 1 else 0 end) = 1 as is_opted_out,
        max(score) as survey_score
    from {{ ref('inbound_replies') }}
    where in_reply_to_key is not null
    group by 1
),

final as (
    select
        sent.idempotency_key,
        sent.message_uuid,
        sent.flow,
        sent.message_class,
        sent.customer_id,
        sent.experiment_key,
        sent.variant_key,
        sent.sent_at,
        coalesce(latest_status.status, 'no_receipt') as delivery_status,
        coalesce(latest_status.status = 'delivered', false) as is_delivered,
        latest_status.error_code,
        latest_status.status_at,
        coalesce(clicks.clicks, 0) as clicks,
        clicks.idempotency_key is not null as is_clicked,
        clicks.first_clicked_at,
        coalesce(replies.replies, 0) as replies,
        replies.idempotency_key is not null as is_replied,
        replies.first_replied_at,
        coalesce(replies.is_opted_out, false) as is_opted_out,
        replies.survey_score
    from sent
    left join latest_status on latest_status.message_uuid = sent.message_uuid
    left join clicks on clicks.idempotency_key = sent.idempotency_key
    left join replies on replies.idempotency_key = sent.idempotency_key
)

select * from final
