{# Use the folder's schema as given (staging, intermediate, marts) rather than prefixing the
   target schema: analysts query marts.<model>, not main_marts.<model>. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
