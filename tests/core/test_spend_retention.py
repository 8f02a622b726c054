"""Retention: old raw rows go in bounded batches by whole UTC days, the rollups stay; the daily
run is claimed by exactly one process; the setting is validated."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from gatehouse_core.audit import _insert_batch
from gatehouse_core.schema import LLMRequest
from gatehouse_core.settings import SettingError
from gatehouse_core.spend.retention import PruneProgress, cutoff_for, prune, prune_if_due
from gatehouse_core.spend.rollups import rollup_totals
from tests.core.spend_data import NOW, random_rows

R = LLMRequest.__table__
DAY = timedelta(days=1)


def store(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Through the audit writer's insert, so the rollup is maintained as in production."""
    for start in range(0, len(rows), 100):
        assert _insert_batch(engine, rows[start : start + 100], dedup=False)[1] == []


def aged(rows: list[dict[str, Any]], by: timedelta) -> list[dict[str, Any]]:
    return [{**r, "created_at": r["created_at"] - by} for r in rows]


def raw_count(engine: Engine, before: Any = None) -> int:
    query = select(func.count()).select_from(R)
    if before is not None:
        query = query.where(R.c.created_at < before)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def totals(engine: Engine) -> dict[str, float | int]:
    with engine.connect() as conn:
        return rollup_totals(conn)


def test_prune_deletes_old_rows_in_batches_and_keeps_the_rollup_totals(engine: Engine) -> None:
    old = aged(random_rows(1, 40, prefix="old"), 100 * DAY)
    recent = random_rows(2, 40, prefix="new")
    store(engine, old + recent)
    before = totals(engine)
    steps: list[PruneProgress] = []
    result = prune(engine, older_than=90 * DAY, now=NOW, batch_rows=7, progress=steps.append)
    assert result.deleted == len(old)
    assert raw_count(engine) == len(recent)
    assert totals(engine) == pytest.approx(before)
    assert len(steps) >= len(old) // 7  # bounded transactions, each reported
    assert [s.deleted for s in steps] == sorted(s.deleted for s in steps)
    assert steps[-1] == PruneProgress(deleted=len(old), total=len(old))


def test_prune_keeps_whole_days(engine: Engine) -> None:
    cutoff = cutoff_for(90 * DAY, NOW)
    assert cutoff == (NOW - 90 * DAY).replace(hour=0, minute=0)
    base = {"model": "m", "provider": "a", "status": "ok", "final_attempt": True}
    store(
        engine,
        [
            {**base, "request_id": "on", "attempt": 1, "created_at": cutoff},
            {**base, "request_id": "before", "attempt": 1}
            | {"created_at": cutoff - timedelta(microseconds=1)},
        ],
    )
    assert prune(engine, older_than=90 * DAY, now=NOW).deleted == 1
    with engine.connect() as conn:
        assert conn.execute(select(R.c.request_id)).scalars().all() == ["on"]


def test_prune_if_due_does_nothing_without_the_setting(engine: Engine) -> None:
    store(engine, aged(random_rows(3, 5, prefix="old"), 400 * DAY))
    assert prune_if_due(engine, env={}, now=NOW) is None
    assert raw_count(engine) > 0


def test_prune_if_due_runs_once_a_day(engine: Engine) -> None:
    env = {"GATEHOUSE_AUDIT_RETENTION_DAYS": "30"}
    store(engine, aged(random_rows(4, 10, prefix="a"), 40 * DAY))
    first = prune_if_due(engine, env=env, now=NOW)
    assert first is not None and first.deleted > 0
    store(engine, aged(random_rows(5, 10, prefix="b"), 40 * DAY))
    assert prune_if_due(engine, env=env, now=NOW + timedelta(hours=23)) is None
    assert raw_count(engine, before=first.cutoff) > 0  # not due yet: left alone
    later = prune_if_due(engine, env=env, now=NOW + timedelta(hours=25))
    assert later is not None and later.deleted > 0


def test_prune_if_due_from_two_threads_at_once_prunes_once(engine: Engine) -> None:
    env = {"GATEHOUSE_AUDIT_RETENTION_DAYS": "30"}
    store(engine, aged(random_rows(6, 10, prefix="a"), 40 * DAY))
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def ask() -> None:
        barrier.wait(timeout=10)
        results.append(prune_if_due(engine, env=env, now=NOW))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    assert sum(r is not None for r in results) == 1


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_a_bad_retention_setting_says_what_is_wrong(sqlite_url: str, value: str) -> None:
    from gatehouse_core.db import make_engine

    engine = make_engine(sqlite_url)
    with pytest.raises(SettingError, match="GATEHOUSE_AUDIT_RETENTION_DAYS=.*e.g. 90"):
        prune_if_due(engine, env={"GATEHOUSE_AUDIT_RETENTION_DAYS": value})
    engine.dispose()
