{# The logical time as a typed literal. Every "now" in the models is this, never the clock. #}
{% macro as_of() -%}
    cast('{{ var("as_of") }}' as timestamp with time zone)
{%- endmacro %}
