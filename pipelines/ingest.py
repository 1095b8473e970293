"""Landing files into ``raw``: typed, deduplicated, latest version wins, nothing dropped.

A partition's files are read and validated completely before anything is written, and the
write is one transaction, so a file that cannot be read fails the partition and loads nothing.
Each row is either loaded or written to ``ops.ingest_rejects`` with its file, line and reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipelines.landing import (
    BOOLEAN,
    ENTITIES,
    INTEGER,
    MONEY,
    PHONE,
    TEXT,
    TIMESTAMP,
    Entity,
    partition_files,
)
from pipelines.outbox import ensure_outbox
from pipelines.phones import normalize_phone_series

LINEAGE = ("_partition", "_source_file", "_source_line")
SQL_TYPES = {
    TEXT: "VARCHAR",
    PHONE: "VARCHAR",
    TIMESTAMP: "TIMESTAMPTZ",
    MONEY: "DECIMAL(18, 4)",
    INTEGER: "BIGINT",
    BOOLEAN: "BOOLEAN",
}
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
# Zoned formats first; a naive timestamp is taken as UTC, as the landing contract says.
ZONED_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M%:z",
)
NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M")


class UnreadableFileError(Exception):
    """A landing file that cannot be read at all: the partition fails, naming file and problem."""


@dataclass
class IngestResult:
    entity: str
    partition: dt.date
    files: list[str] = field(default_factory=list)
    rows_in: int = 0
    loaded: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    invalid_phones: int = 0


# --- reading ---------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{path}: not valid UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        ) from exc


def _require_columns(path: Path, entity: Entity, present: set[str]) -> None:
    missing = [c for c in entity.required if c not in present]
    if missing:
        raise UnreadableFileError(
            f"{path}: wrong columns for {entity.name}: missing {', '.join(missing)}"
        )


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _frame(
    records: list[dict[str, str | None]],
    lines: list[int],
    problems: list[str | None],
    entity: Entity,
) -> pl.DataFrame:
    columns = {c: [r.get(c) for r in records] for c in entity.column_names}
    return pl.DataFrame(
        {**columns, "_source_line": lines, "_problem": problems},
        schema={
            **{c: pl.String for c in entity.column_names},
            "_source_line": pl.Int64,
            "_problem": pl.String,
        },
    )


def _read_csv(path: Path, entity: Entity) -> pl.DataFrame:
    text = _decode(path)
    if not text.strip():
        raise UnreadableFileError(f"{path}: empty file, no header")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    _require_columns(path, entity, set(header))
    fast = _read_plain_csv(text, header, entity)
    if fast is not None:
        return fast
    records, lines, problems = [], [], []
    try:
        for row in reader:
            if not row:
                continue
            # csv counts physical lines, so a record's line is where it ends.
            lines.append(reader.line_num)
            if len(row) != len(header):
                records.append({"_raw": json.dumps(row)})
                problems.append(f"malformed record: {len(row)} fields, header has {len(header)}")
                continue
            records.append({h: v if v.strip() else None for h, v in zip(header, row, strict=True)})
            problems.append(None)
    except csv.Error as exc:
        raise UnreadableFileError(f"{path}: line {reader.line_num}: {exc}") from exc
    frame = _frame(records, lines, problems, entity)
    return frame.with_columns(_record=pl.Series([json.dumps(r) for r in records]))


def _read_plain_csv(text: str, header: list[str], entity: Entity) -> pl.DataFrame | None:
    """The common case read in Polars, or None to let the row-by-row reader judge the file.

    Taken only when every record is one physical line with as many fields as the header: then
    a record's line is its index, and no row needs the careful reader's verdict.
    """
    lines = pl.Series(text.splitlines()[1:], dtype=pl.String)
    if lines.is_empty() or (lines.str.strip_chars() == "").any():
        return None
    quoted = lines.str.contains('"', literal=True)
    commas = lines.str.count_matches(",", literal=True)
    if ((commas != len(header) - 1) & ~quoted).any():
        return None
    if any(len(row) != len(header) for row in csv.reader(lines.filter(quoted).to_list())):
        return None
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode()),
            infer_schema=False,
            new_columns=header,
            has_header=True,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.height != lines.len() or len(set(header)) != len(header):
        return None
    frame = frame.with_columns(pl.when(pl.all().str.strip_chars() != "").then(pl.all()).name.keep())
    return frame.select(
        *[
            pl.col(c) if c in header else pl.lit(None, dtype=pl.String).alias(c)
            for c in entity.column_names
        ],
        _source_line=pl.int_range(2, pl.len() + 2, dtype=pl.Int64),
        _problem=pl.lit(None, dtype=pl.String),
        _record=pl.struct(header).struct.json_encode(),
    )


# A JSON member whose value is not a string or null: the careful reader spells those out.
_NON_TEXT_VALUE = r'":\s*[^"n\s]'


def _read_plain_jsonl(text: str, entity: Entity) -> pl.DataFrame | None:
    """The common case (one object per line, text values) read in Polars, or None."""
    raws = text.splitlines()
    if not raws or re.search(_NON_TEXT_VALUE, text):
        return None
    try:
        frame = pl.read_ndjson(
            io.BytesIO(text.encode()), schema={c: pl.String for c in entity.column_names}
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.height != len(raws) or any(
        frame[c].null_count() == frame.height for c in entity.required
    ):
        return None  # blank lines, or a required column perhaps absent: judge line by line
    return frame.with_columns(
        _source_line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        _problem=pl.lit(None, dtype=pl.String),
        _record=pl.Series(raws, dtype=pl.String),
    )


def _read_jsonl(path: Path, entity: Entity) -> pl.DataFrame:
    text = _decode(path)
    fast = _read_plain_jsonl(text, entity)
    if fast is not None:
        return fast
    records, lines, problems, raws = [], [], [], []
    seen_columns: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        lines.append(number)
        raws.append(line)
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            records.append({})
            problems.append(f"malformed record: {exc}")
            continue
        seen_columns.update(obj)
        records.append({k: _as_text(v) for k, v in obj.items()})
        problems.append(None)
    if records and not any(p is None for p in problems):
        raise UnreadableFileError(f"{path}: no line is a JSON object")
    if records:
        _require_columns(path, entity, seen_columns)
    return _frame(records, lines, problems, entity).with_columns(_record=pl.Series(raws))


def _read_parquet(path: Path, entity: Entity) -> pl.DataFrame:
    try:
        table = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise UnreadableFileError(f"{path}: not a readable Parquet file ({exc})") from exc
    _require_columns(path, entity, set(table.columns))
    as_text = []
    for c in entity.column_names:
        if c not in table.columns:
            as_text.append(pl.lit(None, dtype=pl.String).alias(c))
        elif isinstance(table.schema[c], pl.Datetime):
            fmt = "%Y-%m-%dT%H:%M:%S%.f%:z" if table.schema[c].time_zone else "%Y-%m-%dT%H:%M:%S%.f"
            as_text.append(pl.col(c).dt.to_string(fmt).alias(c))
        else:
            as_text.append(pl.col(c).cast(pl.String).alias(c))
    frame = table.select(as_text).with_columns(
        pl.col(entity.column_names).str.strip_chars().replace("", None)
    )
    return frame.with_columns(
        _source_line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        _problem=pl.lit(None, dtype=pl.String),
        _record=pl.struct(entity.column_names).struct.json_encode(),
    )


READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def read_landing_file(path: Path, entity: Entity) -> pl.DataFrame:
    """All contract columns as text, plus the line, the raw record and any parse problem."""
    reader = READERS.get(path.suffix)
    if reader is None:
        raise UnreadableFileError(f"{path}: unknown file type {path.suffix!r}")
    frame = reader(path, entity)
    return frame.with_columns(_source_file=pl.lit(str(path)))


# --- typing and validation -------------------------------------------------------------------


def parse_timestamp(col: pl.Expr) -> pl.Expr:
    """ISO 8601 text (with offset, `Z`, naive = UTC, or a bare date) as UTC; bad values null."""
    text = col.str.replace(r"[Zz]$", "+00:00")
    zoned = [text.str.to_datetime(f, strict=False, time_zone="UTC") for f in ZONED_FORMATS]
    naive = [
        text.str.to_datetime(f, strict=False).dt.replace_time_zone("UTC") for f in NAIVE_FORMATS
    ]
    day = (
        text.str.to_date("%Y-%m-%d", strict=False)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    return pl.coalesce([*zoned, *naive, day])


def _integer(col: pl.Expr) -> pl.Expr:
    as_float = col.str.strip_chars().cast(pl.Float64, strict=False)
    whole = pl.when(as_float.is_finite() & (as_float == as_float.round(0))).then(as_float)
    return pl.coalesce([col.str.strip_chars().cast(pl.Int64, strict=False), whole.cast(pl.Int64)])


def _money(col: pl.Expr) -> pl.Expr:
    value = col.str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _boolean(col: pl.Expr) -> pl.Expr:
    lowered = col.str.strip_chars().str.to_lowercase()
    return (
        pl.when(lowered.is_in(TRUE_WORDS))
        .then(True)
        .when(lowered.is_in(FALSE_WORDS))
        .then(False)
        .otherwise(None)
    )


PARSERS = {TIMESTAMP: parse_timestamp, INTEGER: _integer, MONEY: _money, BOOLEAN: _boolean}
PARSE_REASONS = {
    TIMESTAMP: "invalid timestamp",
    INTEGER: "invalid integer",
    MONEY: "invalid number",
    BOOLEAN: "invalid boolean",
}


def _parsed(name: str) -> str:
    return f"__parsed_{name}"


def _problem_exprs(entity: Entity) -> list[pl.Expr]:
    """One expression per check, each null or "reason: detail"; the first one found wins.

    Typed columns are checked against their parsed values (``_parsed``), computed once.
    """
    checks: list[pl.Expr] = [pl.col("_problem")]
    for name in entity.required:
        checks.append(pl.when(pl.col(name).is_null()).then(pl.lit(f"missing value: {name}")))
    for name, kind in entity.columns.items():
        if kind in PARSERS:
            bad = pl.col(name).is_not_null() & pl.col(_parsed(name)).is_null()
            checks.append(
                pl.when(bad).then(pl.format(f"{PARSE_REASONS[kind]}: {name}={{}}", pl.col(name)))
            )
    for name, allowed in entity.enums.items():
        bad = pl.col(name).is_not_null() & ~pl.col(name).str.to_lowercase().is_in(allowed)
        checks.append(pl.when(bad).then(pl.format(f"invalid value: {name}={{}}", pl.col(name))))
    for name in entity.positive:
        bad = (pl.col(_parsed(name)) <= 0).fill_null(False)
        checks.append(
            pl.when(bad).then(pl.format(f"non-positive quantity: {name}={{}}", pl.col(name)))
        )
    return checks


def validate(frame: pl.DataFrame, entity: Entity) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split read rows into typed rows for ``raw`` and rejects with a reason each."""
    parsers = {n: PARSERS[k] for n, k in entity.columns.items() if k in PARSERS}
    checked = (
        frame.lazy()
        .with_columns(pl.col(entity.column_names).str.strip_chars().replace("", None))
        .with_columns(parse(pl.col(n)).alias(_parsed(n)) for n, parse in parsers.items())
        .with_columns(_reason=pl.coalesce(_problem_exprs(entity)))
        .collect()
    )
    # The day a row landed travels with it when the caller has set it.
    lineage = [c for c in LINEAGE if c in frame.columns]
    rejects = checked.filter(pl.col("_reason").is_not_null()).select(*lineage, "_reason", "_record")
    good = checked.filter(pl.col("_reason").is_null())
    typed = []
    for name in entity.columns:
        if name in parsers:
            typed.append(pl.col(_parsed(name)).alias(name))
        elif name in entity.enums:
            typed.append(pl.col(name).str.to_lowercase())
        else:
            typed.append(pl.col(name))
    good = good.select(*typed, *lineage)
    for name, kind in entity.columns.items():
        if kind == PHONE:
            e164, valid = normalize_phone_series(good[name])
            good = good.with_columns(e164.alias(f"{name}_e164"), valid.alias(f"{name}_valid"))
    return good, rejects


# --- the warehouse side ----------------------------------------------------------------------


def raw_columns(entity: Entity) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    for name, kind in entity.columns.items():
        cols.append((name, SQL_TYPES[kind]))
        if kind == PHONE:
            cols += [(f"{name}_e164", "VARCHAR"), (f"{name}_valid", "BOOLEAN")]
    return cols + [("_partition", "DATE"), ("_source_file", "VARCHAR"), ("_source_line", "BIGINT")]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables and the ops bookkeeping tables if they are missing."""
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists ops")
    existing = set(
        con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'raw'"
        ).fetchall()
    )
    tables = {table for table, _ in existing}
    for entity in ENTITIES.values():
        cols = ", ".join(f"{n} {t}" for n, t in raw_columns(entity))
        con.execute(f"create table if not exists raw.{entity.name} ({cols})")
        # A column added to the contract later joins a table made before it, empty for old rows.
        for name, kind in raw_columns(entity):
            if entity.name in tables and (entity.name, name) not in existing:
                con.execute(f"alter table raw.{entity.name} add column {name} {kind}")
    con.execute(
        """
        create table if not exists ops.ingest_rejects (
            entity varchar, partition_date date, source_file varchar, source_line bigint,
            reason varchar, detail varchar, record varchar
        )"""
    )
    ensure_outbox(con)
    con.execute(
        """
        create table if not exists ops.ingest_files (
            entity varchar, partition_date date, source_file varchar,
            rows_in bigint, loaded bigint, rejected bigint
        )"""
    )


def _version_order(entity: Entity) -> str:
    """Latest wins: by the record's own version column, then by when and where it landed."""
    parts = [f"{entity.version_column} desc nulls last"] if entity.version_column else []
    return ", ".join(parts + ["_partition desc", "_source_file desc", "_source_line desc"])


def _upsert(con: duckdb.DuckDBPyConnection, entity: Entity, rows: pl.DataFrame) -> None:
    table = f"raw.{entity.name}"
    key = ", ".join(entity.key)
    match = " and ".join(f"t.{k} = i.{k}" for k in entity.key)
    # Copied in once: the polars frame would be converted again by every query reading it.
    con.register("incoming_rows", rows)
    con.execute("create or replace temp table incoming as select * from incoming_rows")
    con.unregister("incoming_rows")
    con.execute(
        f"""
        create or replace temp table winners as
        select * exclude (rn) from (
            select *, row_number() over (partition by {key} order by {_version_order(entity)}) rn
            from (
                select * from {table} t where exists (select 1 from incoming i where {match})
                union all by name
                select * from incoming
            )
        ) where rn = 1"""
    )
    con.execute(f"delete from {table} t using incoming i where {match}")
    con.execute(f"insert into {table} by name select * from winners")
    con.execute("drop table winners")
    con.execute("drop table incoming")


def _per_file_counts(
    dated: list[tuple[dt.date, Path]], read: pl.DataFrame | None, rejects: pl.DataFrame
) -> list[tuple[dt.date, str, int, int, int]]:
    """(day, file, rows in, loaded, rejected) for every file, empty files included."""
    if read is None:
        return []
    rows_in = dict(read.group_by("_source_file").len().iter_rows())
    rejected = dict(rejects.group_by("_source_file").len().iter_rows()) if rejects.height else {}
    counts = []
    for day, path in dated:
        n, bad = rows_in.get(str(path), 0), rejected.get(str(path), 0)
        counts.append((day, str(path), n, n - bad, bad))
    return counts


def ingest_partition(
    con: duckdb.DuckDBPyConnection, landing: Path, entity_name: str, day: dt.date
) -> IngestResult:
    """Load one entity's day. Running it twice changes nothing."""
    return ingest_days(con, landing, entity_name, [day])


def ingest_days(
    con: duckdb.DuckDBPyConnection, landing: Path, entity_name: str, days: list[dt.date]
) -> IngestResult:
    """Load one entity's days in one transaction, as if each day were loaded in order.

    A catch-up over months is one upsert instead of one per day: the ordering of versions
    already runs by ``_partition``, so the winners are the same. Running it twice changes
    nothing.
    """
    entity = ENTITIES[entity_name]
    dated = [(day, path) for day in days for path in partition_files(landing, entity_name, day)]
    # Every file is read before anything is written: one unreadable file fails the whole load.
    frames = [read_landing_file(path, entity) for _, path in dated]
    result = IngestResult(
        entity=entity_name, partition=days[0], files=[str(path) for _, path in dated]
    )
    read = (
        pl.concat(
            [
                frame.with_columns(_partition=pl.lit(day))
                for (day, _), frame in zip(dated, frames, strict=True)
            ]
        )
        if frames
        else None
    )
    del frames
    good, rejects = validate(read, entity) if read is not None else (pl.DataFrame(), pl.DataFrame())
    per_file = _per_file_counts(dated, read, rejects)
    del read

    ensure_schema(con)
    con.execute("begin transaction")
    try:
        if good.height:
            _upsert(con, entity, good)
        for table in ("ops.ingest_rejects", "ops.ingest_files"):
            con.execute(
                f"delete from {table} where entity = ? and list_contains(?, partition_date)",
                [entity_name, days],
            )
        if rejects.height:
            reject_rows = rejects.select(
                entity=pl.lit(entity_name),
                partition_date="_partition",
                source_file="_source_file",
                source_line="_source_line",
                reason=pl.col("_reason").str.split(":").list.first(),
                detail="_reason",
                record="_record",
            )
            con.register("reject_rows", reject_rows)
            con.execute("insert into ops.ingest_rejects by name select * from reject_rows")
            con.unregister("reject_rows")
        if per_file:
            con.executemany(
                "insert into ops.ingest_files values (?, ?, ?, ?, ?, ?)",
                [(entity_name, *row) for row in per_file],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise

    result.rows_in = sum(r[2] for r in per_file)
    result.loaded = good.height
    result.rejected = rejects.height
    if rejects.height:
        result.reasons = dict(
            Counter(rejects["_reason"].str.split(":").list.first().to_list()).most_common()
        )
    for name, kind in entity.columns.items():
        if kind == PHONE and good.height:
            result.invalid_phones += good.filter(
                pl.col(name).is_not_null() & ~pl.col(f"{name}_valid")
            ).height
    return result
