{# The continuous (linearly interpolated) `fraction` quantile of a column, an aggregate that
   ignores nulls: NumPy's default quantile, so pipelines.stats.winsorize.nonzero_cap agrees. #}
{% macro percentile_of(column, fraction) -%}
    {{ return(adapter.dispatch('percentile_of')(column, fraction)) }}
{%- endmacro %}

{% macro duckdb__percentile_of(column, fraction) -%}
    quantile_cont({{ column }}, {{ fraction }})
{%- endmacro %}

{% macro default__percentile_of(column, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ column }})
{%- endmacro %}
