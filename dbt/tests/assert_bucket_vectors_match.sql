-- Every shared test vector gets the same bucket from the dispatched macro and from its
-- portable default (tests/test_experiments.py checks the Python function on the same file).
-- dbt seeds read an empty field as null; the vectors mean the empty id there.
with

vectors as (
    select
        salt,
        coalesce(unit_id, '') as unit_id,
        bucket as expected_bucket
    from {{ ref('bucket_test_vectors') }}
),

computed as (
    select
        salt,
        unit_id,
        expected_bucket,
        {{ bucket_of('salt', 'unit_id') }} as dispatched_bucket,
        {{ default__bucket_of('salt', 'unit_id') }} as portable_bucket
    from vectors
)

select *
from computed
where dispatched_bucket is null
    or dispatched_bucket <> expected_bucket
    or portable_bucket is null
    or portable_bucket <> expected_bucket
