-- Every text a customer sent us, what it was (the callback service's own reading when it
-- handled it, else the keyword list's), and which of our messages it answered: the latest one
-- sent to that number in the week before it.
with

inbound as (
    select * from {{ ref('stg_sms__inbound_messages') }}
    where received_at < {{ as_of() }}
),

outcomes as (
    select * from {{ ref('stg_sms__reply_outcomes') }}
),

keywords as (
    select * from {{ ref('sms_keywords') }}
),

sent as (
    select * from {{ ref('stg_ops__messages_sent') }}
    where state = 'sent' and phone_e164 is not null and sent_at < {{ as_of() }}
),

customers as (
    select customer_id, phone_e164, first_name from {{ ref('stg_shop__customers') }}
    where phone_e164 is not null
    -- Two customers may share a number; the reply is filed under one of them, always the same.
    qualify row_number() over (partition by phone_e164 order by customer_id) = 1
),

-- Texts the service never saw (a legacy export) are read with the models' keyword list.
matched as (
    select
        inbound.message_uuid,
        max(case when keywords.intent = 'opt_out' then 1 else 0 end) = 1 as says_opt_out,
        max(case when keywords.intent = 'opt_in' then 1 else 0 end) = 1 as says_opt_in,
        max(case when keywords.intent = 'help' then 1 else 0 end) = 1 as says_help
    from inbound
    left join keywords
        on (keywords.match = 'exact' and inbound.text_normalized = keywords.phrase)
        or (
            keywords.match = 'contains'
            and {{ dbt.position('keywords.phrase', 'inbound.text_normalized') }} > 0
        )
    group by 1
),

answered as (
    select
        inbound.message_uuid,
        sent.idempotency_key as in_reply_to_key,
        sent.flow as in_reply_to_flow,
        sent.customer_id
    from inbound
    inner join sent
        on sent.phone_e164 = inbound.from_number_e164
        and sent.sent_at <= inbound.received_at
        and inbound.received_at < {{ dbt.dateadd('day', 7, 'sent.sent_at') }}
    qualify row_number() over (
        partition by inbound.message_uuid order by sent.sent_at desc, sent.idempotency_key desc
    ) = 1
),

final as (
    select
        inbound.message_uuid,
        inbound.received_at,
        inbound.from_number_e164,
        inbound.to_number_e164,
        inbound.text,
        coalesce(
            outcomes.action,
            case
                when matched.says_opt_out or inbound.plivo_intent = 'optout' then 'opt_out'
                when matched.says_opt_in or inbound.plivo_intent = 'optin' then 'opt_in'
                when matched.says_help or inbound.plivo_intent = 'help' then 'help'
                -- A bare 0-10 from an old export answered some survey; no points were known.
                when inbound.text_normalized in (
                    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10'
                ) then 'score'
                else 'text'
            end
        ) as action,
        outcomes.action is not null as handled_by_service,
        outcomes.survey_key,
        coalesce(
            outcomes.score,
            case
                when outcomes.action is null and inbound.text_normalized in (
                    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10'
                ) then cast(inbound.text_normalized as integer)
            end
        ) as score,
        outcomes.points,
        answered.in_reply_to_key,
        answered.in_reply_to_flow,
        coalesce(answered.customer_id, customers.customer_id) as customer_id,
        customers.first_name
    from inbound
    left join outcomes on outcomes.message_uuid = inbound.message_uuid
    left join matched on matched.message_uuid = inbound.message_uuid
    left join answered on answered.message_uuid = inbound.message_uuid
    left join customers on customers.phone_e164 = inbound.from_number_e164
)

select * from final
