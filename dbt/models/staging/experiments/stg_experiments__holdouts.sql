with

source as (
    select * from {{ source('experiments', 'experiment_holdouts') }}
),

renamed as (
    select
        flow,
        -- The holdout is a layer of its own with one pseudo-experiment, named after the flow.
        'holdout_' || flow as experiment_key,
        'holdout_' || flow as layer,
        share,
        salt,
        -- Buckets [0, holdout_bucket_end) are held out; the rest are exposed.
        cast(round(share * 10000) as integer) as holdout_bucket_end,
        _source_file as source_file
    from source
)

select * from renamed
