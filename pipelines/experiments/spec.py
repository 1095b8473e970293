"""Experiment specs: one YAML file per experiment in ``experiments/``, plus ``holdouts.yaml``.

``load_experiments(folder)`` reads and validates them all and raises one ``SpecError`` listing
every problem, each as ``<folder>/<file>: <field>: <what is wrong>``, so an analyst fixes a
spec in one pass rather than one error per run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

from pipelines.experiments.buckets import BUCKETS
from pipelines.flows import FLOWS
from pipelines.templates import DEFAULT, template_exists, template_names

HOLDOUTS_FILE = "holdouts.yaml"
# Holdout layers and their pseudo-experiments are named holdout_<flow>; specs may not be.
HOLDOUT_PREFIX = "holdout"

STATUSES = ("draft", "running", "stopped", "shipped")
UNITS = ("customer",)
ANALYSES = ("fixed", "sequential", "bayesian")
MARGIN_TYPES = ("absolute", "relative")
DIRECTIONS = ("higher_is_worse", "lower_is_worse")
WEIGHT_TOLERANCE = 1e-9


# --- the metrics a spec may name ----------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    base: str  # delivered, clicked, ..., revenue_per_delivered
    window_days: int  # measured within this many days after exposure
    kind: str  # binary (share of units), mean (per unit) or ratio (sum over sum)
    higher_is_better: bool


WINDOWS = {"1d": 1, "7d": 7, "30d": 30}
_BASES = {
    "delivered": ("binary", True),
    "clicked": ("binary", True),
    "replied": ("binary", True),
    "opted_out": ("binary", False),
    "converted": ("binary", True),
    "revenue": ("mean", True),
    "revenue_per_delivered": ("ratio", True),
}
METRICS: dict[str, Metric] = {
    f"{base}_{window}": Metric(f"{base}_{window}", base, days, kind, better)
    for base, (kind, better) in _BASES.items()
    for window, days in WINDOWS.items()
}


# --- the spec ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    weight: float
    template: str = DEFAULT
    params: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Guardrail:
    metric: str
    margin: float  # positive; in the metric's units, or a share of control when relative
    margin_type: str  # absolute | relative
    direction: str  # higher_is_worse | lower_is_worse


@dataclass(frozen=True)
class Spec:
    key: str
    hypothesis: str
    flow: str
    status: str
    start_date: dt.date
    variants: list[Variant]  # the first is the control
    primary_metric: str
    minimum_detectable_effect: float  # relative, 0.05 = a 5% lift
    source: str  # the file, as shown in error messages
    unit: str = "customer"
    end_date: dt.date | None = None
    layer: str = ""  # default: the flow
    salt: str = ""  # default: the key
    secondary_metrics: list[str] = field(default_factory=list)
    guardrail_metrics: list[Guardrail] = field(default_factory=list)
    alpha: float = 0.05
    power: float = 0.8
    analysis: str = "fixed"
    planned_units: int | None = None

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def control(self) -> Variant:
        return self.variants[0]


@dataclass(frozen=True)
class Holdout:
    """A share of customers who get none of a marketing flow's messages."""

    flow: str
    share: float
    salt: str
    source: str

    @property
    def key(self) -> str:
        return f"{HOLDOUT_PREFIX}_{self.flow}"


@dataclass(frozen=True)
class Catalog:
    specs: list[Spec]
    holdouts: list[Holdout]


class SpecError(ValueError):
    """One or more invalid specs; ``errors`` lists each problem as file: field: message."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        noun = "problem" if len(errors) == 1 else "problems"
        super().__init__(
            f"{len(errors)} {noun} in experiment specs:\n" + "\n".join(f"  {e}" for e in errors)
        )


# --- reading YAML --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that records a field given twice, which plain YAML silently overwrites."""

    duplicates: list[tuple[str, int, int]]

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append((str(key), seen[key], line))
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, report: _Report) -> tuple[bool, Any]:
    """(False, None) when the file cannot be read or parsed; a field given twice is reported
    but does not stop the rest of the file being checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.error("", f"cannot be read: {exc}")
        return False, None
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        report.error("", f"not valid YAML: {' '.join(str(exc).split())}")
        return False, None
    finally:
        loader.dispose()
    for name, first, again in loader.duplicates:
        report.error(name, f"given twice (lines {first} and {again})")
    return True, data


# --- validation helpers --------------------------------------------------------------------------

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_MISSING = object()


@dataclass
class _Report:
    source: str
    errors: list[str]

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where + ': ' if where else ''}{message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole_buckets(value: float) -> bool:
    return abs(value * BUCKETS - round(value * BUCKETS)) < WEIGHT_TOLERANCE * BUCKETS


class _Fields:
    """Typed reads of one mapping's fields; each problem is reported under its field path."""

    def __init__(self, data: dict, report: _Report, prefix: str, known: tuple[str, ...]):
        self.data, self.report, self.prefix = data, report, prefix
        for name in data:
            if name not in known:
                report.error(self.path(str(name)), f"unknown field (known: {', '.join(known)})")

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> None:
        self.report.error(self.path(name), message)

    def given(self, name: str, default: Any = _MISSING) -> tuple[bool, Any]:
        """(True, value) when the field is set; else (False, default), reporting it if required."""
        value = self.data.get(name)
        if value is None:
            if default is _MISSING:
                self.error(name, "required")
                return False, None
            return False, default
        return True, value

    def text(self, name: str, default: Any = _MISSING, pattern: re.Pattern | None = None) -> Any:
        given, value = self.given(name, default)
        if not given:
            return value
        if not isinstance(value, str) or not value.strip():
            self.error(name, f"must be non-empty text, not {value!r}")
            return None
        if pattern and not pattern.match(value):
            self.error(name, f"{value!r} must be lowercase letters, digits and _, letter first")
            return None
        return value

    def choice(self, name: str, options: tuple[str, ...], default: Any = _MISSING) -> Any:
        given, value = self.given(name, default)
        if not given:
            return value
        if not isinstance(value, str) or value not in options:
            self.error(name, f"{value!r} is not one of {', '.join(options)}")
            return None
        return value

    def number(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        check: Callable[[float], bool] | None = None,
        rule: str = "",
    ) -> Any:
        given, value = self.given(name, default)
        if not given:
            return value
        if not _is_number(value):
            self.error(name, f"must be a number, not {value!r}")
            return None
        if check and not check(value):
            self.error(name, f"{value} {rule}")
            return None
        return value

    def date(self, name: str, default: Any = _MISSING) -> Any:
        given, value = self.given(name, default)
        if not given:
            return value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = dt.date.fromisoformat(value)
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            self.error(name, f"must be a date (YYYY-MM-DD), not {value!r}")
            return None
        return value

    def items(self, name: str, default: Any = _MISSING) -> Iterator[tuple[str, Any]]:
        """(path, item) for each entry of a list field."""
        given, value = self.given(name, default)
        if not given:
            return
        if not isinstance(value, list):
            self.error(name, f"must be a list, not {value!r}")
            return
        for i, item in enumerate(value):
            yield f"{self.path(name)}[{i}]", item


def _mapping(item: Any, where: str, report: _Report) -> dict | None:
    if not isinstance(item, dict):
        report.error(where, f"must be a mapping of fields, not {item!r}")
        return None
    return item


# --- one spec ------------------------------------------------------------------------------------

SPEC_FIELDS = (
    "key",
    "hypothesis",
    "flow",
    "unit",
    "status",
    "start_date",
    "end_date",
    "layer",
    "salt",
    "variants",
    "primary_metric",
    "secondary_metrics",
    "guardrail_metrics",
    "alpha",
    "power",
    "minimum_detectable_effect",
    "analysis",
    "planned_units",
)
VARIANT_FIELDS = ("key", "weight", "template", "params")
GUARDRAIL_FIELDS = ("metric", "margin", "margin_type", "direction")


def _metric(fields: _Fields, name: str, value: Any) -> str | None:
    if not isinstance(value, str) or value not in METRICS:
        bases = ", ".join(_BASES)
        fields.error(name, f"unknown metric {value!r} (metrics are <{bases}>_<1d|7d|30d>)")
        return None
    return value


def _variants(f: _Fields, flow: str | None, report: _Report) -> list[Variant]:
    variants: list[Variant] = []
    entries = list(f.items("variants"))
    if isinstance(f.data.get("variants"), list) and len(entries) < 2:
        f.error("variants", "needs at least two variants (the first is the control)")
    seen: set[str] = set()
    ok = True
    for where, item in entries:
        data = _mapping(item, where, report)
        if data is None:
            ok = False
            continue
        v = _Fields(data, report, where, VARIANT_FIELDS)
        key = v.text("key", pattern=_IDENT)
        if key is not None and key in seen:
            v.error("key", f"{key!r} is used by another variant of this experiment")
        seen.add(key)
        weight = v.number(
            "weight",
            check=lambda w: 0 < w <= 1 and _whole_buckets(w),
            rule="must be above 0, at most 1 and a multiple of 0.0001 (one bucket)",
        )
        template = v.text("template", DEFAULT, pattern=_IDENT)
        if flow and template and not template_exists(flow, template):
            names = ", ".join(template_names(flow)) or "none"
            v.error(
                "template",
                f"no template pipelines/templates/{flow}/{template}.j2 (this flow has: {names})",
            )
        params = _params(v, flow)
        if None in (key, weight, template, params):
            ok = False
            continue
        variants.append(Variant(key, float(weight), template, params))
    if entries and all(_is_number(_get(item, "weight")) for _, item in entries):
        total = sum(_get(item, "weight") for _, item in entries)
        if abs(total - 1) > WEIGHT_TOLERANCE:
            report.error(f"{entries[-1][0]}.weight", f"weights sum to {total:g}, not 1")
            ok = False
    return variants if ok else []


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def _params(v: _Fields, flow: str | None) -> dict[str, int] | None:
    _, raw = v.given("params", {})
    if not isinstance(raw, dict):
        v.error("params", f"must be a mapping of parameter: value, not {raw!r}")
        return None
    if flow is None:
        return {}
    allowed = FLOWS[flow].params
    params, ok = {}, True
    for name, value in raw.items():
        param = allowed.get(name)
        if param is None:
            known = ", ".join(allowed) or "none"
            v.error(f"params.{name}", f"{flow} has no parameter {name!r} (it has: {known})")
            ok = False
        elif not isinstance(value, int) or isinstance(value, bool):
            v.error(f"params.{name}", f"must be a whole number, not {value!r}")
            ok = False
        elif not param.minimum <= value <= param.maximum:
            v.error(
                f"params.{name}",
                f"{value} is outside {param.minimum}..{param.maximum} ({param.description})",
            )
            ok = False
        else:
            params[name] = value
    return params if ok else None


def _guardrails(f: _Fields, report: _Report) -> list[Guardrail]:
    guardrails = []
    for where, item in f.items("guardrail_metrics", []):
        data = _mapping(item, where, report)
        if data is None:
            continue
        g = _Fields(data, report, where, GUARDRAIL_FIELDS)
        metric = g.text("metric")
        metric = metric and _metric(g, "metric", metric)
        margin = g.number("margin", check=lambda m: m > 0, rule="must be above 0")
        margin_type = g.choice("margin_type", MARGIN_TYPES)
        default_direction = (
            None
            if metric is None
            else ("lower_is_worse" if METRICS[metric].higher_is_better else "higher_is_worse")
        )
        direction = g.choice("direction", DIRECTIONS, default_direction)
        if None not in (metric, margin, margin_type, direction):
            guardrails.append(Guardrail(metric, float(margin), margin_type, direction))
    return guardrails


def parse_spec(data: Any, report: _Report) -> Spec | None:
    """Validate one spec's fields; problems go to the report, and None comes back if any."""
    before = len(report.errors)
    data = _mapping(data, "", report)
    if data is None:
        return None
    f = _Fields(data, report, "", SPEC_FIELDS)
    key = f.text("key", pattern=_IDENT)
    if key and key.startswith(HOLDOUT_PREFIX):
        f.error("key", f"names starting with {HOLDOUT_PREFIX!r} are kept for holdouts")
    hypothesis = f.text("hypothesis")
    flow = f.choice("flow", tuple(FLOWS))
    unit = f.choice("unit", UNITS, "customer")
    status = f.choice("status", STATUSES)
    start_date = f.date("start_date")
    end_date = f.date("end_date", None)
    if start_date and end_date and end_date < start_date:
        f.error("end_date", f"{end_date} is before start_date {start_date}")
    if status in ("stopped", "shipped") and f.data.get("end_date") is None:
        f.error("end_date", f"required once the status is {status} (the last day it ran)")
    layer = f.text("layer", flow, pattern=_IDENT)
    if layer and "layer" in data and layer.startswith(HOLDOUT_PREFIX):
        f.error("layer", f"names starting with {HOLDOUT_PREFIX!r} are kept for holdouts")
    salt = f.text("salt", key)
    variants = _variants(f, flow, report)
    primary = f.text("primary_metric")
    primary = primary and _metric(f, "primary_metric", primary)
    secondary = []
    for where, item in f.items("secondary_metrics", []):
        if not isinstance(item, str) or item not in METRICS:
            report.error(where, f"unknown metric {item!r}")
        else:
            secondary.append(item)
    guardrails = _guardrails(f, report)
    alpha = f.number("alpha", 0.05, check=lambda a: 0 < a < 0.5, rule="must be in (0, 0.5)")
    power = f.number("power", 0.8, check=lambda p: 0 < p < 1, rule="must be in (0, 1)")
    mde = f.number(
        "minimum_detectable_effect",
        check=lambda m: m > 0,
        rule="must be above 0 (a relative lift: 0.05 is 5%)",
    )
    analysis = f.choice("analysis", ANALYSES, "fixed")
    _, planned = f.given("planned_units", None)
    if planned is not None and (
        not isinstance(planned, int) or isinstance(planned, bool) or planned <= 0
    ):
        f.error("planned_units", f"must be a whole number above 0, not {planned!r}")
    if len(report.errors) > before:
        return None
    return Spec(
        key=key,
        hypothesis=hypothesis.strip(),
        flow=flow,
        status=status,
        start_date=start_date,
        variants=variants,
        primary_metric=primary,
        minimum_detectable_effect=float(mde),
        source=report.source,
        unit=unit,
        end_date=end_date,
        layer=layer,
        salt=salt,
        secondary_metrics=secondary,
        guardrail_metrics=guardrails,
        alpha=float(alpha),
        power=float(power),
        analysis=analysis,
        planned_units=planned,
    )


# --- holdouts ------------------------------------------------------------------------------------

HOLDOUT_FIELDS = ("flow", "share", "salt")


def parse_holdouts(data: Any, report: _Report) -> list[Holdout]:
    if data is None:
        return []
    data = _mapping(data, "", report)
    if data is None:
        return []
    f = _Fields(data, report, "", ("holdouts",))
    holdouts: list[Holdout] = []
    seen: set[str] = set()
    for where, item in f.items("holdouts", []):
        entry = _mapping(item, where, report)
        if entry is None:
            continue
        h = _Fields(entry, report, where, HOLDOUT_FIELDS)
        flow = h.choice("flow", tuple(FLOWS))
        if flow and not FLOWS[flow].is_marketing:
            h.error("flow", f"{flow} is transactional; only marketing flows have holdouts")
            flow = None
        elif flow in seen:
            h.error("flow", f"{flow} already has a holdout in this file")
            flow = None
        share = h.number(
            "share",
            check=lambda s: 0 < s <= 0.5 and _whole_buckets(s),
            rule="must be above 0, at most 0.5 and a multiple of 0.0001 (one bucket)",
        )
        salt = h.text("salt", f"{HOLDOUT_PREFIX}_{flow}" if flow else None)
        if None not in (flow, share, salt):
            seen.add(flow)
            holdouts.append(Holdout(flow, float(share), salt, report.source))
    return holdouts


# --- the folder ----------------------------------------------------------------------------------


def _overlaps(a: Spec, b: Spec) -> bool:
    far = dt.date.max
    return a.start_date <= (b.end_date or far) and b.start_date <= (a.end_date or far)


def _span(spec: Spec) -> str:
    return f"{spec.start_date}..{spec.end_date or 'open'}"


def _across_files(specs: list[Spec], holdouts: list[Holdout], errors: list[str]) -> None:
    """Rules that need every spec at once: unique keys and salts, one experiment per layer."""
    by_key: dict[str, Spec] = {}
    salts: dict[str, str] = {h.salt: f"the {h.flow} holdout" for h in holdouts}
    for spec in specs:
        if spec.key in by_key:
            errors.append(
                f"{spec.source}: key: {spec.key!r} is already the key of {by_key[spec.key].source}"
            )
        else:
            by_key[spec.key] = spec
        # Two experiments with one salt would split units identically: correlated, not random.
        if spec.salt in salts:
            errors.append(
                f"{spec.source}: salt: {spec.salt!r} is also the salt of {salts[spec.salt]}; "
                "experiments sharing a salt assign the same units to the same buckets"
            )
        else:
            salts[spec.salt] = spec.source
    # Drafts assign nobody, so they cannot collide with anything yet.
    live = [s for s in specs if s.status != "draft"]
    for a, b in combinations(live, 2):
        if a.layer == b.layer and _overlaps(a, b):
            errors.append(
                f"{b.source}: start_date: {b.key} ({_span(b)}) overlaps {a.key} "
                f"({_span(a)}, {a.source}) in layer {a.layer}; experiments in one layer "
                "must not run at the same time (end one first, or give one another layer)"
            )


def _label(folder: Path, path: Path) -> str:
    return f"{folder.name}/{path.name}"


def _spec_files(folder: Path) -> list[Path]:
    files = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(p for p in files if p.name != HOLDOUTS_FILE)


def _load(folder: Path) -> tuple[Catalog, list[str]]:
    folder = Path(folder)
    errors: list[str] = []
    if not folder.is_dir():
        return Catalog([], []), [f"{folder}: the experiments folder does not exist"]
    specs = []
    for path in _spec_files(folder):
        report = _Report(_label(folder, path), errors)
        readable, data = _read_yaml(path, report)
        if not readable:
            continue
        if data is None:
            report.error("", "is empty")
            continue
        spec = parse_spec(data, report)
        if spec is not None:
            specs.append(spec)
    holdouts: list[Holdout] = []
    holdouts_path = folder / HOLDOUTS_FILE
    if holdouts_path.exists():
        report = _Report(_label(folder, holdouts_path), errors)
        readable, data = _read_yaml(holdouts_path, report)
        holdouts = parse_holdouts(data, report) if readable else []
    _across_files(specs, holdouts, errors)
    return Catalog(specs, holdouts), errors


def load_experiments(folder: Path) -> Catalog:
    """Every spec and the holdouts in the folder; raises SpecError listing all problems."""
    catalog, errors = _load(folder)
    if errors:
        raise SpecError(errors)
    return catalog


def load_specs(folder: Path) -> list[Spec]:
    """The folder's experiment specs (holdouts.yaml is validated too)."""
    return load_experiments(folder).specs
