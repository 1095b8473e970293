"""Loyalty points earned by survey answers: the service's own small, durable store.

The service cannot read the warehouse, yet must credit a survey once (even when Plivo delivers
the same reply twice, or the customer answers twice) and tell the customer the new balance.
So it keeps its decisions in a SQLite file of its own (`<events_dir>/loyalty.sqlite3`, WAL,
synchronous FULL): one row per inbound reply that scored a survey, keyed by the inbound
MessageUUID. A repeated callback finds its row and gets the same answer.

Each row also holds the event record it produced and whether that record reached the event log.
The row is committed first, the record logged second; a crash between the two leaves the row
`logged = 0`, and the next start appends it to the log (`unlogged`), so the warehouse ledger
never misses a credit the store counted.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.callbacks.journal import Survey

POINTS_FILE = "loyalty.sqlite3"

SCHEMA = """
create table if not exists credits (
    inbound_uuid text primary key,
    survey_key text not null,
    account text not null,          -- the survey's customer id, else its phone
    score integer not null,
    points integer not null,        -- credited by this reply; 0 once the survey has its answer
    balance integer not null,       -- the account's balance after this reply
    received_at text not null,
    record text not null,           -- the event record written to the log
    logged integer not null default 0
);
create unique index if not exists one_credit_per_survey on credits (survey_key)
    where points > 0;
"""


@dataclass(frozen=True)
class Credit:
    points: int  # credited now (0: this survey was already answered)
    balance: int
    repeated: bool = False  # the same inbound message, seen before


class PointsStore:
    def __init__(self, events_dir: Path) -> None:
        path = Path(events_dir) / POINTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock; BEGIN IMMEDIATE serializes other processes.
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._con.execute("pragma journal_mode = wal")
        self._con.execute("pragma synchronous = full")
        self._con.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def credit(
        self,
        inbound_uuid: str,
        survey: Survey,
        score: int,
        at: dt.datetime,
        make_record: Callable[[Credit], dict[str, Any]],
    ) -> tuple[Credit, dict[str, Any]]:
        """Credit `survey` for this reply once; returns the credit and its event record."""
        account = survey.customer_id or survey.phone_e164
        with self._lock:
            con = self._con
            con.execute("begin immediate")
            try:
                seen = con.execute(
                    "select points, balance, record from credits where inbound_uuid = ?",
                    [inbound_uuid],
                ).fetchone()
                if seen:
                    con.execute("commit")
                    return Credit(seen[0], seen[1], repeated=True), json.loads(seen[2])
                answered = con.execute(
                    "select 1 from credits where survey_key = ? and points > 0",
                    [survey.idempotency_key],
                ).fetchone()
                points = 0 if answered else survey.points
                before = con.execute(
                    "select coalesce(sum(points), 0) from credits where account = ?", [account]
                ).fetchone()[0]
                credit = Credit(points, before + points)
                record = make_record(credit)
                con.execute(
                    """insert into credits (inbound_uuid, survey_key, account, score, points,
                       balance, received_at, record) values (?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        inbound_uuid,
                        survey.idempotency_key,
                        account,
                        score,
                        points,
                        credit.balance,
                        at.astimezone(dt.UTC).isoformat(),
                        json.dumps(record, sort_keys=True),
                    ],
                )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return credit, record

    def mark_logged(self, inbound_uuid: str) -> None:
        with self._lock:
            self._con.execute(
                "update credits set logged = 1 where inbound_uuid = ?", [inbound_uuid]
            )

    def unlogged(self) -> list[tuple[str, dict[str, Any]]]:
        """(inbound uuid, event record) of credits whose record may not be in the log."""
        with self._lock:
            rows = self._con.execute(
                "select inbound_uuid, record from credits where logged = 0 order by received_at"
            ).fetchall()
        return [(uuid, json.loads(record)) for uuid, record in rows]

    def balance(self, account: str) -> int:
        with self._lock:
            return self._con.execute(
                "select coalesce(sum(points), 0) from credits where account = ?", [account]
            ).fetchone()[0]
