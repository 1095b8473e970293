{# An 8-byte float for money sums and squares: DuckDB's `float` is 4 bytes, which would round
   a sum of squared revenue visibly; most other engines' `float` is already 8 bytes. #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro default__type_double() -%}
    {{ dbt.type_float() }}
{%- endmacro %}
