-- Every change of consent, by scope, from the shop's records and from the customer's own
-- replies. A STOP-like reply revokes both scopes (any reasonable revocation counts, FCC
-- 2025); START/YES/UNSTOP restores each scope the customer had consented to in writing.
with

records as (
    select
        customer_id,
        phone_e164,
        scope,
        status = 'opted_in' as is_opted_in,
        occurred_at,
        'record: ' || consent_source as reason
    from {{ ref('stg_shop__sms_consents') }}
    where occurred_at < {{ as_of() }}
),

keywords as (
    select * from {{ ref('sms_keywords') }}
),

inbound as (
    select * from {{ ref('stg_sms__inbound_messages') }}
    where received_at < {{ as_of() }}
),

-- The most decisive reading of each reply: an opt-out phrase anywhere wins over the rest.
matched as (
    select
        inbound.message_uuid,
        max(case when keywords.intent = 'opt_out' then 1 else 0 end) = 1 as says_opt_out,
        max(case when keywords.intent = 'opt_in' then 1 else 0 end) = 1 as says_opt_in
    from inbound
    left join keywords
        on (keywords.match = 'exact' and inbound.text_normalized = keywords.phrase)
        or (
            keywords.match = 'contains'
            and {{ dbt.position('keywords.phrase', 'inbound.text_normalized') }} > 0
        )
    group by 1
),

-- What the callback service did with the reply when it answered it (null for other sources):
-- its reading (punctuation and case forgiven) already bound the sender, so it binds here too.
outcomes as (
    select message_uuid, action from {{ ref('stg_sms__reply_outcomes') }}
),

classified as (
    select
        inbound.message_uuid,
        inbound.from_number_e164,
        inbound.received_at,
        inbound.text_normalized,
        case
            when matched.says_opt_out or inbound.plivo_intent = 'optout'
                or outcomes.action = 'opt_out' then 'opt_out'
            when matched.says_opt_in or inbound.plivo_intent = 'optin'
                or outcomes.action = 'opt_in' then 'opt_in'
        end as intent
    from inbound
    inner join matched on matched.message_uuid = inbound.message_uuid
    left join outcomes on outcomes.message_uuid = inbound.message_uuid
),

customers as (
    select customer_id, phone_e164 from {{ ref('stg_shop__customers') }}
    where phone_e164 is not null
),

ever_consented as (
    select distinct customer_id, scope from records where is_opted_in
),

replies as (
    select
        customers.customer_id,
        classified.from_number_e164 as phone_e164,
        scopes.scope,
        classified.intent = 'opt_in' as is_opted_in,
        classified.received_at as occurred_at,
        'reply: ' || classified.text_normalized as reason
    from classified
    inner join customers on customers.phone_e164 = classified.from_number_e164
    cross join (values ('transactional'), ('marketing')) as scopes (scope)
    left join ever_consented
        on ever_consented.customer_id = customers.customer_id
        and ever_consented.scope = scopes.scope
    where classified.intent = 'opt_out'
        or (classified.intent = 'opt_in' and ever_consented.customer_id is not null)
),

unioned as (
    select * from records
    union all
    select * from replies
)

select * from unioned
