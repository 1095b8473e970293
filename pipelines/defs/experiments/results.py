import dagster as dg

from pipelines.defs.partitions import WAREHOUSE_POOL, daily_partition, one_day_at_a_time
from pipelines.defs.resources import WarehouseResource
from pipelines.experiments.analysis import analyze, write
from pipelines.experiments.spec import load_specs
from pipelines.settings import get_experiments_dir

RESULTS = dg.AssetKey(["analysis", "experiment_results"])
SUMMARIES = dg.AssetKey(["marts", "experiment_metric_summaries"])


@dg.asset(
    key=RESULTS,
    deps=[SUMMARIES],
    partitions_def=daily_partition,
    backfill_policy=one_day_at_a_time,
    pool=WAREHOUSE_POOL,
    group_name="experiments",
    kinds={"scipy", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec("no_sample_ratio_mismatch", asset=RESULTS),
        dg.AssetCheckSpec("guardrails_hold", asset=RESULTS),
    ],
    description=(
        "Every running experiment's metrics and variants compared with control (CUPED, "
        "sequential or Bayesian as its spec says, Holm / Benjamini-Hochberg adjusted), a "
        "verdict per experiment, and each flow's incremental revenue against its holdout."
    ),
)
def experiment_results(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    as_of = context.partition_time_window.end
    specs = load_specs(get_experiments_dir())
    with warehouse.get().connect() as con:
        analysis = analyze(con, specs, as_of)
        counts = write(con, analysis, as_of)
    verdicts = analysis.verdicts
    srm = verdicts.filter("srm_mismatch")["experiment_key"].to_list()
    breached = (
        analysis.results.filter("breached")["experiment_key"].unique().to_list()
        if analysis.results.height
        else []
    )
    yield dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "verdicts": dg.MetadataValue.md(_markdown(verdicts)),
            **{f"rows_{table}": n for table, n in counts.items()},
        }
    )
    yield dg.AssetCheckResult(
        check_name="no_sample_ratio_mismatch",
        passed=not srm,
        metadata={"experiments": ", ".join(srm) or "none"},
    )
    yield dg.AssetCheckResult(
        check_name="guardrails_hold",
        passed=not breached,
        metadata={"experiments": ", ".join(sorted(breached)) or "none"},
    )


def _markdown(verdicts) -> str:
    lines = ["| experiment | verdict | why |", "|---|---|---|"]
    lines += [
        f"| {r['experiment_key']} | {r['verdict']} | {r['reason']} |"
        for r in verdicts.iter_rows(named=True)
    ]
    return "\n".join(lines)
