-- Mutual exclusion within a layer: no unit is in two experiments of one layer whose windows
-- overlap. The loader rejects overlapping specs; this catches a spec edited after the fact.
-- (Dagster shows it as a check on experiment_assignments.)
{{ config(meta={'dagster': {'ref': {'name': 'experiment_assignments'}}}) }}

with

assignments as (
    select * from {{ ref('experiment_assignments') }}
),

experiments as (
    select
        experiment_key,
        starts_at,
        coalesce(ends_at, cast('9999-12-31' as timestamp with time zone)) as ends_at
    from {{ ref('stg_experiments__experiments') }}
)

select
    a.layer,
    a.unit_id,
    a.experiment_key,
    b.experiment_key as other_experiment_key
from assignments as a
inner join experiments as ea on ea.experiment_key = a.experiment_key
inner join assignments as b
    on b.layer = a.layer
    and b.unit_id = a.unit_id
    and b.experiment_key > a.experiment_key
inner join experiments as eb on eb.experiment_key = b.experiment_key
where ea.starts_at < eb.ends_at
    and eb.starts_at < ea.ends_at
