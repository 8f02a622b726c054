"""`gatehouse demo-data`, `gatehouse rollups rebuild`, `gatehouse audit prune` through the real
entry point: JSON on stdout, progress on stderr, one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select

from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest, UsageHourly, UsageHourlyWorkflow
from tests.core.cli import ok, run
from tests.core.spend_data import assert_rollups_match_raw


def count(table: object) -> int:
    engine = make_engine()
    with engine.connect() as conn:
        found = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return found


def test_demo_data_rebuild_prune_and_delete(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    code, out, err = run(
        capsys, "demo-data", "--days", "3", "--rows", "900", "--seed", "2", "--json"
    )
    assert code == 0, err
    written = json.loads(out)
    assert set(written) >= {"rows", "calls", "seed", "start", "end"}
    assert (written["rows"], written["seed"]) == (900, 2)
    assert "wrote 900/900 rows (100%)" in err

    engine = make_engine()
    with engine.begin() as conn:
        for table in (UsageHourly.__table__, UsageHourlyWorkflow.__table__):
            conn.execute(delete(table))  # lost: rebuild brings both back
    code, out, err = run(capsys, "rollups", "rebuild", "--since", "5d", "--json")
    assert code == 0, err
    days = json.loads(out)
    assert sum(d["rows"] for d in days) == 900
    assert len(err.strip().splitlines()) == len(days)  # one progress line per day
    assert_rollups_match_raw(engine)
    engine.dispose()

    before = count(UsageHourly.__table__)
    code, out, err = run(capsys, "audit", "prune", "--older-than", "1d", "--json")
    assert code == 0, err
    pruned = json.loads(out)
    assert f"deleted {pruned['deleted']}/{pruned['deleted']} rows (100%)" in err
    assert set(pruned) == {"cutoff", "deleted"} and pruned["deleted"] > 0
    assert count(LLMRequest.__table__) == 900 - pruned["deleted"]
    assert count(UsageHourly.__table__) == before  # rollups stay

    deleted = json.loads(ok(capsys, "demo-data", "--delete", "--json"))
    assert deleted == {"rows": 900 - pruned["deleted"], "buckets": before}
    assert count(LLMRequest.__table__) == count(UsageHourly.__table__) == 0
    assert count(UsageHourlyWorkflow.__table__) == 0


def test_human_output_says_what_happened(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "rollups", "rebuild")
    assert "No audit rows" in out
    out = ok(capsys, "demo-data", "--days", "2", "--rows", "50")
    assert "Wrote 50 demo audit rows" in out and "demo-data --delete" in out
    # The rebuild runs from the oldest row's UTC day to today: 2 or 3 days by the hour it runs.
    engine = make_engine()
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(LLMRequest.created_at))).scalar_one()
    engine.dispose()
    today = datetime.now(UTC).date()
    span = (today - oldest.replace(tzinfo=oldest.tzinfo or UTC).astimezone(UTC).date()).days + 1
    assert span in (2, 3)
    rebuilt = ok(capsys, "rollups", "rebuild", "--since", "2d")
    assert f"Rebuilt {span} day(s) of rollups from 50 audit rows" in rebuilt
    assert "Deleted 0 audit row(s)" in ok(capsys, "audit", "prune", "--older-than", "90d")
    assert "Deleted 50 demo row(s)" in ok(capsys, "demo-data", "--delete")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("audit", "prune", "--older-than", "12h"), "under a day"),
        (("audit", "prune", "--older-than", "soon"), "not a time span"),
        (("rollups", "rebuild", "--since", "0d"), "empty time span"),
        (("demo-data", "--delete", "--rows", "5", "--seed", "0"), "takes no --rows, --seed"),
    ],
)
def test_bad_spans_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_demo_data_twice_tells_how_to_start_over(capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "demo-data", "--days", "1", "--rows", "20")
    code, _, err = run(capsys, "demo-data", "--days", "1", "--rows", "20")
    assert code == 1 and "gatehouse demo-data --delete" in err


def test_prune_requires_a_span(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "audit", "prune")
    assert exit_info.value.code == 2
    assert "--older-than" in capsys.readouterr().err
