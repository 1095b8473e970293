with

source as (
    select * from {{ source('experiments', 'experiments') }}
),

renamed as (
    select
        experiment_key,
        hypothesis,
        flow,
        message_class,
        unit_type,
        status,
        layer,
        salt,
        start_date,
        end_date,
        -- The experiment runs from the start of start_date to the end of end_date (UTC).
        cast(start_date as timestamp with time zone) as starts_at,
        cast({{ dbt.dateadd('day', 1, 'end_date') }} as timestamp with time zone) as ends_at,
        primary_metric,
        secondary_metrics,
        alpha,
        power,
        minimum_detectable_effect,
        analysis,
        planned_units,
        _source_file as source_file
    from source
)

select * from renamed
