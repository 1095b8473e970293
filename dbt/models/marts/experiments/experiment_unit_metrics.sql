{#
    One row per exposed unit of each experiment and flow holdout layer: when it was exposed,
    and every metric the specs may name, measured in [exposed_at, exposed_at + window).

    A window that has not ended by as_of is incomplete: its metrics are null (not a partial
    count) and is_complete_<w>d is false, so an analysis can only ever average whole windows.
    Binary metrics are 0/1 integers. revenue_<w>d is the raw sum of the unit's orders;
    revenue_<w>d_winsorized caps it at the experiment's `experiment_revenue_cap_quantile`
    (default 0.99) quantile of the NON-ZERO values among units whose window is complete, both
    arms pooled (most units spend nothing, so a plain quantile would cap at zero).
    The *_pre_30d columns are the same measures over the 30 days before exposure: CUPED's
    covariates. The engagement ones count messages of any flow, since few of the experiment's
    own flow go out before a unit's first exposure.
#}
{%- set windows = [1, 7, 30] -%}
{%- set quantile = var('experiment_revenue_cap_quantile') -%}

with

exposures as (
    select * from {{ ref('int_experiment_exposures_identified') }}
),

events as (
    select * from {{ ref('int_customer_events_unioned') }}
),

-- Only events within 30 days either side of exposure can count: one equi-join on the unit.
joined as (
    select
        exposures.experiment_key,
        exposures.unit_id,
        exposures.exposed_at,
        exposures.flow,
        events.event_type,
        events.occurred_at,
        events.flow as event_flow,
        events.amount
    from exposures
    inner join events
        on events.customer_id = exposures.unit_id
        and events.occurred_at >= {{ dbt.dateadd('day', -30, 'exposures.exposed_at') }}
        and events.occurred_at < {{ dbt.dateadd('day', 30, 'exposures.exposed_at') }}
),

windowed as (
    select
        *,
        {%- for w in windows %}
        occurred_at >= exposed_at
            and occurred_at < {{ dbt.dateadd('day', w, 'exposed_at') }} as in_{{ w }}d,
        {%- endfor %}
        occurred_at < exposed_at as in_pre_30d
    from joined
),

measured as (
    select
        experiment_key,
        unit_id,
        {%- for w in windows %}
        max(case when in_{{ w }}d and event_type = 'delivered' and event_flow = flow then 1 else 0 end)
            as delivered_{{ w }}d,
        sum(case when in_{{ w }}d and event_type = 'delivered' and event_flow = flow then 1 else 0 end)
            as delivered_messages_{{ w }}d,
        max(case when in_{{ w }}d and event_type = 'clicked' and event_flow = flow then 1 else 0 end)
            as clicked_{{ w }}d,
        max(case when in_{{ w }}d and event_type = 'replied' then 1 else 0 end) as replied_{{ w }}d,
        max(case when in_{{ w }}d and event_type = 'opted_out' then 1 else 0 end)
            as opted_out_{{ w }}d,
        max(case when in_{{ w }}d and event_type = 'ordered' then 1 else 0 end)
            as converted_{{ w }}d,
        sum(case when in_{{ w }}d and event_type = 'ordered' then 1 else 0 end) as orders_{{ w }}d,
        sum(case when in_{{ w }}d and event_type = 'ordered' then amount else 0 end)
            as revenue_{{ w }}d,
        {%- endfor %}
        max(case when in_pre_30d and event_type = 'delivered' then 1 else 0 end)
            as delivered_pre_30d,
        max(case when in_pre_30d and event_type = 'clicked' then 1 else 0 end) as clicked_pre_30d,
        max(case when in_pre_30d and event_type = 'replied' then 1 else 0 end) as replied_pre_30d,
        max(case when in_pre_30d and event_type = 'opted_out' then 1 else 0 end)
            as opted_out_pre_30d,
        max(case when in_pre_30d and event_type = 'ordered' then 1 else 0 end)
            as converted_pre_30d,
        sum(case when in_pre_30d and event_type = 'ordered' then amount else 0 end)
            as revenue_pre_30d
    from windowed
    group by experiment_key, unit_id
),

-- Units without any event in reach get zeros; incomplete windows get nulls.
units as (
    select
        exposures.experiment_key,
        exposures.layer,
        exposures.flow,
        exposures.is_holdout_layer,
        exposures.variant_key,
        exposures.variant_index,
        exposures.is_control,
        exposures.unit_id,
        exposures.assigned_at,
        exposures.exposed_at,
        exposures.exposure_idempotency_key,
        exposures.exposure_state,
        exposures.is_arm_consistent,
        {%- for w in windows %}
        {{ dbt.dateadd('day', w, 'exposures.exposed_at') }} <= {{ as_of() }} as is_complete_{{ w }}d,
        {%- endfor %}
        {%- for w in windows %}
        {%- for column in ['delivered', 'delivered_messages', 'clicked', 'replied', 'opted_out', 'converted', 'orders'] %}
        case
            when {{ dbt.dateadd('day', w, 'exposures.exposed_at') }} <= {{ as_of() }}
                then coalesce(measured.{{ column }}_{{ w }}d, 0)
        end as {{ column }}_{{ w }}d,
        {%- endfor %}
        case
            when {{ dbt.dateadd('day', w, 'exposures.exposed_at') }} <= {{ as_of() }}
                then cast(coalesce(measured.revenue_{{ w }}d, 0) as {{ type_double() }})
        end as revenue_{{ w }}d,
        {%- endfor %}
        coalesce(measured.delivered_pre_30d, 0) as delivered_pre_30d,
        coalesce(measured.clicked_pre_30d, 0) as clicked_pre_30d,
        coalesce(measured.replied_pre_30d, 0) as replied_pre_30d,
        coalesce(measured.opted_out_pre_30d, 0) as opted_out_pre_30d,
        coalesce(measured.converted_pre_30d, 0) as converted_pre_30d,
        cast(coalesce(measured.revenue_pre_30d, 0) as {{ type_double() }}) as revenue_pre_30d
    from exposures
    left join measured
        on measured.experiment_key = exposures.experiment_key
        and measured.unit_id = exposures.unit_id
),

-- Caps per experiment, from the units each window's analysis will use, arms pooled.
caps as (
    select
        experiment_key,
        {%- for w in windows %}
        {{ percentile_of('case when revenue_' ~ w ~ 'd <> 0 then revenue_' ~ w ~ 'd end', quantile) }}
            as revenue_{{ w }}d_cap,
        {%- endfor %}
        {{ percentile_of('case when revenue_pre_30d <> 0 then revenue_pre_30d end', quantile) }}
            as revenue_pre_30d_cap
    from units
    group by experiment_key
),

winsorized as (
    select
        units.*,
        {%- for w in windows %}
        case
            when units.revenue_{{ w }}d > caps.revenue_{{ w }}d_cap then caps.revenue_{{ w }}d_cap
            else units.revenue_{{ w }}d
        end as revenue_{{ w }}d_winsorized,
        {%- endfor %}
        case
            when units.revenue_pre_30d > caps.revenue_pre_30d_cap then caps.revenue_pre_30d_cap
            else units.revenue_pre_30d
        end as revenue_pre_30d_winsorized,
        {%- for w in windows %}
        caps.revenue_{{ w }}d_cap,
        {%- endfor %}
        caps.revenue_pre_30d_cap
    from units
    inner join caps on caps.experiment_key = units.experiment_key
)

select * from winsorized
