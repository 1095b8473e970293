{#
    What the statistics engine reads: per experiment (and flow holdout layer), arm and metric,
    the sums over exposed units whose window is complete as of as_of. Units whose window is
    still open are left out (they are counted in experiment_variant_units).

    - binary metrics (delivered, clicked, replied, opted_out, converted): sum = units with the
      event; sum_squares equals sum.
    - revenue: winsorized per unit (see experiment_unit_metrics: the cap is a quantile of the
      non-zero values, arms pooled, given in winsorize_cap).
    - revenue_per_delivered: a ratio of sums over units; sum and sum_squares are the
      (winsorized) revenue, denominator_* the delivered messages of the flow, and
      sum_numerator_denominator their per-unit products, for the delta method.
    - CUPED: pre_* are the metric's covariate over the 30 days before exposure (named in
      pre_metric), sum_products the per-unit products with the metric. None for ratios.
#}
{%- set metrics = [] -%}
{%- for w in [1, 7, 30] -%}
    {%- for base in ['delivered', 'clicked', 'replied', 'opted_out', 'converted'] -%}
        {%- do metrics.append({
            'base': base, 'window': w, 'type': 'binary',
            'value': base ~ '_' ~ w ~ 'd', 'pre': base ~ '_pre_30d',
            'denominator': none, 'cap': none
        }) -%}
    {%- endfor -%}
    {%- do metrics.append({
        'base': 'revenue', 'window': w, 'type': 'mean',
        'value': 'revenue_' ~ w ~ 'd_winsorized', 'pre': 'revenue_pre_30d_winsorized',
        'denominator': none, 'cap': 'revenue_' ~ w ~ 'd_cap'
    }) -%}
    {%- do metrics.append({
        'base': 'revenue_per_delivered', 'window': w, 'type': 'ratio',
        'value': 'revenue_' ~ w ~ 'd_winsorized', 'pre': none,
        'denominator': 'delivered_messages_' ~ w ~ 'd', 'cap': 'revenue_' ~ w ~ 'd_cap'
    }) -%}
{%- endfor -%}

with

units as (
    select * from {{ ref('experiment_unit_metrics') }}
),

arms as (
    select * from {{ ref('experiment_variant_units') }}
),

summed as (
    {%- for m in metrics %}
    select
        experiment_key,
        variant_key,
        '{{ m.base }}_{{ m.window }}d' as metric,
        count(*) as n,
        sum(cast({{ m.value }} as {{ type_double() }})) as sum,
        sum(cast({{ m.value }} as {{ type_double() }}) * {{ m.value }}) as sum_squares,
        {%- if m.pre %}
        sum(cast({{ m.pre }} as {{ type_double() }})) as pre_sum,
        sum(cast({{ m.pre }} as {{ type_double() }}) * {{ m.pre }}) as pre_sum_squares,
        sum(cast({{ m.value }} as {{ type_double() }}) * {{ m.pre }}) as sum_products,
        {%- else %}
        cast(null as {{ type_double() }}) as pre_sum,
        cast(null as {{ type_double() }}) as pre_sum_squares,
        cast(null as {{ type_double() }}) as sum_products,
        {%- endif %}
        {%- if m.denominator %}
        sum(cast({{ m.denominator }} as {{ type_double() }})) as denominator_sum,
        sum(cast({{ m.denominator }} as {{ type_double() }}) * {{ m.denominator }})
            as denominator_sum_squares,
        sum(cast({{ m.value }} as {{ type_double() }}) * {{ m.denominator }})
            as sum_numerator_denominator,
        {%- else %}
        cast(null as {{ type_double() }}) as denominator_sum,
        cast(null as {{ type_double() }}) as denominator_sum_squares,
        cast(null as {{ type_double() }}) as sum_numerator_denominator,
        {%- endif %}
        {%- if m.cap %}
        max({{ m.cap }}) as winsorize_cap
        {%- else %}
        cast(null as {{ type_double() }}) as winsorize_cap
        {%- endif %}
    from units
    where is_complete_{{ m.window }}d
    group by experiment_key, variant_key
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

metrics as (
    {%- for m in metrics %}
    select
        '{{ m.base }}_{{ m.window }}d' as metric,
        '{{ m.base }}' as base_metric,
        {{ m.window }} as window_days,
        '{{ m.type }}' as metric_type,
        {% if m.pre %}'{{ m.pre }}'{% else %}cast(null as varchar){% endif %} as pre_metric
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

-- Every arm gets every metric, with n = 0 where no unit has a complete window yet.
summaries as (
    select
        arms.experiment_key,
        arms.flow,
        arms.is_holdout_layer,
        arms.variant_key,
        arms.variant_index,
        arms.is_control,
        arms.weight,
        arms.units_assigned,
        arms.units_exposed,
        metrics.metric,
        metrics.base_metric,
        metrics.window_days,
        metrics.metric_type,
        coalesce(summed.n, 0) as n,
        coalesce(summed.sum, 0) as sum,
        coalesce(summed.sum_squares, 0) as sum_squares,
        -- The arm's value of the metric: a share, a mean per unit, or a ratio of sums.
        case
            when metrics.metric_type = 'ratio' and summed.denominator_sum > 0
                then coalesce(summed.sum, 0) / summed.denominator_sum
            when metrics.metric_type <> 'ratio' and summed.n > 0
                then coalesce(summed.sum, 0) / summed.n
        end as mean,
        metrics.pre_metric,
        case when metrics.pre_metric is not null then coalesce(summed.pre_sum, 0) end as pre_sum,
        case
            when metrics.pre_metric is not null then coalesce(summed.pre_sum_squares, 0)
        end as pre_sum_squares,
        case
            when metrics.pre_metric is not null then coalesce(summed.sum_products, 0)
        end as sum_products,
        case
            when metrics.metric_type = 'ratio' then coalesce(summed.denominator_sum, 0)
        end as denominator_sum,
        case
            when metrics.metric_type = 'ratio' then coalesce(summed.denominator_sum_squares, 0)
        end as denominator_sum_squares,
        case
            when metrics.metric_type = 'ratio' then coalesce(summed.sum_numerator_denominator, 0)
        end as sum_numerator_denominator,
        summed.winsorize_cap
    from arms
    cross join metrics
    left join summed
        on summed.experiment_key = arms.experiment_key
        and summed.variant_key = arms.variant_key
        and summed.metric = metrics.metric
)

select * from summaries
