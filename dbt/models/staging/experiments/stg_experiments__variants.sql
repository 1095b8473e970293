with

source as (
    select * from {{ source('experiments', 'experiment_variants') }}
),

renamed as (
    select
        experiment_key,
        variant_index,
        variant_key,
        variant_index = 0 as is_control,
        weight,
        -- Whole buckets per variant (the loader checks each weight is a multiple of 1/10,000),
        -- so these ranges equal pipelines/experiments/buckets.py's exactly.
        cast(round(weight * 10000) as integer) as bucket_count,
        template,
        params
    from source
),

ranged as (
    select
        *,
        sum(bucket_count) over (
            partition by experiment_key
            order by variant_index
            rows between unbounded preceding and current row
        ) - bucket_count as bucket_start,
        sum(bucket_count) over (
            partition by experiment_key
            order by variant_index
            rows between unbounded preceding and current row
        ) as bucket_end
    from renamed
)

select
    experiment_key,
    variant_index,
    variant_key,
    is_control,
    weight,
    bucket_count,
    cast(bucket_start as integer) as bucket_start,
    cast(bucket_end as integer) as bucket_end,
    template,
    params
from ranged
