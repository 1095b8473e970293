{#
    What each marketing flow adds, measured against its holdout: per flow and window (7 and
    30 days after exposure), revenue per unit of customers the flow reached (`exposed`: its
    first message was sent) against customers its holdout kept back (`holdout`: the first
    message that would have been sent, at the same moment after the same checks), over units
    whose window is complete as of as_of.

    incremental_revenue = (exposed mean - holdout mean) x exposed units: what the flow earned
    beyond what those customers would have spent anyway. Per arm: n, sum, sum_squares of raw
    revenue (the money), and with revenue_pre_30d pre_sum, pre_sum_squares, sum_products
    for CUPED. incremental_revenue_winsorized uses revenue capped at the layer's non-zero
    quantile (winsorize_cap); the full winsorized sums, steadier for inference, are the
    holdout_<flow> rows of experiment_metric_summaries.
#}
{%- set arms = ['exposed', 'holdout'] -%}

with

units as (
    select * from {{ ref('experiment_unit_metrics') }}
    where is_holdout_layer
),

counts as (
    select * from {{ ref('experiment_variant_units') }}
    where is_holdout_layer
),

windows as (
    select 7 as window_days
    union all
    select 30
),

per_unit as (
    select
        units.experiment_key,
        units.flow,
        units.variant_key,
        windows.window_days,
        case windows.window_days
            when 7 then units.revenue_7d
            when 30 then units.revenue_30d
        end as revenue,
        case windows.window_days
            when 7 then units.revenue_7d_winsorized
            when 30 then units.revenue_30d_winsorized
        end as revenue_winsorized,
        case windows.window_days
            when 7 then units.revenue_7d_cap
            when 30 then units.revenue_30d_cap
        end as winsorize_cap,
        units.revenue_pre_30d
    from units
    cross join windows
    where (windows.window_days = 7 and units.is_complete_7d)
        or (windows.window_days = 30 and units.is_complete_30d)
),

arm_sums as (
    select
        experiment_key,
        variant_key,
        window_days,
        count(*) as n,
        sum(revenue) as revenue_sum,
        sum(revenue * revenue) as revenue_sum_squares,
        sum(revenue_pre_30d) as pre_sum,
        sum(revenue_pre_30d * revenue_pre_30d) as pre_sum_squares,
        sum(revenue * revenue_pre_30d) as sum_products,
        sum(revenue_winsorized) as winsorized_sum,
        max(winsorize_cap) as winsorize_cap
    from per_unit
    group by experiment_key, variant_key, window_days
),

layers as (
    select
        counts.experiment_key,
        counts.flow,
        windows.window_days,
        max(case when counts.variant_key = 'holdout' then counts.weight end) as holdout_share,
        {%- for arm in arms %}
        max(case when counts.variant_key = '{{ arm }}' then counts.units_assigned end)
            as {{ arm }}_units_assigned,
        max(case when counts.variant_key = '{{ arm }}' then counts.units_exposed end)
            as {{ arm }}_units_exposed{% if not loop.last %},{% endif %}
        {%- endfor %}
    from counts
    cross join windows
    group by counts.experiment_key, counts.flow, windows.window_days
),

compared as (
    select
        layers.flow,
        layers.experiment_key,
        'revenue_' || cast(layers.window_days as varchar) || 'd' as metric,
        layers.window_days,
        layers.holdout_share,
        {%- for arm in arms %}
        layers.{{ arm }}_units_assigned,
        layers.{{ arm }}_units_exposed,
        coalesce({{ arm }}.n, 0) as {{ arm }}_n,
        coalesce({{ arm }}.revenue_sum, 0) as {{ arm }}_sum,
        coalesce({{ arm }}.revenue_sum_squares, 0) as {{ arm }}_sum_squares,
        coalesce({{ arm }}.pre_sum, 0) as {{ arm }}_pre_sum,
        coalesce({{ arm }}.pre_sum_squares, 0) as {{ arm }}_pre_sum_squares,
        coalesce({{ arm }}.sum_products, 0) as {{ arm }}_sum_products,
        coalesce({{ arm }}.winsorized_sum, 0) as {{ arm }}_winsorized_sum,
        case when {{ arm }}.n > 0 then {{ arm }}.revenue_sum / {{ arm }}.n end as {{ arm }}_mean,
        {%- endfor %}
        coalesce(exposed.winsorize_cap, holdout.winsorize_cap) as winsorize_cap
    from layers
    left join arm_sums as exposed
        on exposed.experiment_key = layers.experiment_key
        and exposed.window_days = layers.window_days
        and exposed.variant_key = 'exposed'
    left join arm_sums as holdout
        on holdout.experiment_key = layers.experiment_key
        and holdout.window_days = layers.window_days
        and holdout.variant_key = 'holdout'
),

final as (
    select
        *,
        exposed_mean - holdout_mean as revenue_difference,
        case
            when holdout_mean <> 0 then (exposed_mean - holdout_mean) / abs(holdout_mean)
        end as relative_lift,
        (exposed_mean - holdout_mean) * exposed_n as incremental_revenue,
        case
            when exposed_n > 0 and holdout_n > 0
                then (exposed_winsorized_sum / exposed_n - holdout_winsorized_sum / holdout_n)
                    * exposed_n
        end as incremental_revenue_winsorized
    from compared
)

select * from final
