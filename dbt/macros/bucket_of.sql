{# The experiment bucket of a unit: the first 8 hex digits of md5(salt || unit id) read as an
   integer, mod 10,000. pipelines/experiments/buckets.py computes the same number; the seed
   bucket_test_vectors holds cases both must agree on. #}
{% macro bucket_of(salt, unit_id) -%}
    {{ return(adapter.dispatch('bucket_of')(salt, unit_id)) }}
{%- endmacro %}

{% macro duckdb__bucket_of(salt, unit_id) -%}
    cast(cast('0x' || substr(md5({{ salt }} || {{ unit_id }}), 1, 8) as ubigint) % 10000 as integer)
{%- endmacro %}

{# Engines without a hex-to-integer cast: sum the 8 hex digits by place value, in bigint since
   the value reaches 2^32. #}
{% macro default__bucket_of(salt, unit_id) -%}
    {%- set hex = 'lower(' ~ dbt.hash(dbt.concat([salt, unit_id])) ~ ')' -%}
    cast(mod(
        {%- for i in range(8) %}
        (cast({{ dbt.position("substring(" ~ hex ~ ", " ~ (i + 1) ~ ", 1)", "'0123456789abcdef'") }} as {{ dbt.type_bigint() }}) - 1) * {{ 16 ** (7 - i) }}{% if not loop.last %} +{% endif %}
        {%- endfor %},
        10000
    ) as {{ dbt.type_int() }})
{%- endmacro %}
