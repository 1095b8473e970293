-- Every click on one of our short links, with the message that carried the link (through
-- ops.short_links) and whether a link-preview fetcher rather than a person made it. Clicks
-- on links we cannot resolve (a legacy tool's, a mistyped code) are left out.
with

clicks as (
    select
        click_id,
        short_code,
        clicked_at,
        user_agent
    from {{ ref('stg_sms__link_clicks') }}
    where clicked_at < {{ as_of() }}
),

short_links as (
    select
        code,
        idempotency_key
    from {{ ref('stg_ops__short_links') }}
),

messages as (
    select * from {{ ref('int_messages_resolved') }}
    where is_sent
),

resolved as (
    select
        clicks.click_id,
        clicks.short_code,
        clicks.clicked_at,
        clicks.user_agent,
        {{ is_link_preview('clicks.user_agent') }} as is_link_preview,
        messages.idempotency_key,
        messages.flow,
        messages.message_class,
        messages.customer_id,
        messages.experiment_key,
        messages.variant_key,
        messages.sent_at,
        messages.delivered_at
    from clicks
    inner join short_links on short_links.code = clicks.short_code
    inner join messages on messages.idempotency_key = short_links.idempotency_key
)

select * from resolved
