{# A number from a JSON object column, or null: engine-specific, so adapter-dispatched. #}
{% macro json_number(column, key) -%}
    {{ return(adapter.dispatch('json_number')(column, key)) }}
{%- endmacro %}

{% macro duckdb__json_number(column, key) -%}
    try_cast(json_extract_string({{ column }}, '$.{{ key }}') as double)
{%- endmacro %}

{% macro default__json_number(column, key) -%}
    cast(json_extract_path_text({{ column }}, '{{ key }}') as {{ dbt.type_float() }})
{%- endmacro %}
