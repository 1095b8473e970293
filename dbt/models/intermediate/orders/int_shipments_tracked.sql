-- One row per shipment with the time of each status it has reached by the logical time.
with

events as (
    select * from {{ ref('stg_shop__fulfillment_events') }}
    where occurred_at < {{ as_of() }}
),

tracked as (
    select
        shipment_id,
        any_value(order_id) as order_id,
        max(carrier) as carrier,
        max(tracking_number) as tracking_number,
        max(tracking_url) as tracking_url,
        max(estimated_delivery_at) as estimated_delivery_at,
        min(case when status = 'label_created' then occurred_at end) as label_created_at,
        min(case when status = 'shipped' then occurred_at end) as shipped_at,
        min(case when status = 'out_for_delivery' then occurred_at end) as out_for_delivery_at,
        min(case when status = 'delivered' then occurred_at end) as delivered_at,
        min(case when status = 'returned' then occurred_at end) as returned_at,
        count(case when status = 'failed_attempt' then 1 end) as failed_attempts,
        arg_max(status, occurred_at) as latest_status
    from events
    group by 1
)

select * from tracked
