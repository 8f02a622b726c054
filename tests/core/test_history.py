"""Reading the change history: filters, keyset, readable differences, secrets masked."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert

from gatehouse_core import history
from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.schema import SettingsAudit

T = SettingsAudit.__table__
PROVIDER = {
    "name": "p1",
    "config": {"base_url": "http://a", "rate_limit": {"requests_per_minute": 60}},
}


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    rows = [
        {"actor": "alice", "action": "provider.create", "target": "p1", "before": None,
         "after": {**PROVIDER, "api_key": "sk-or-…a1b2"}},
        {"actor": "bob", "action": "provider.update", "target": "p1", "before": PROVIDER,
         "after": {"name": "p1", "config": {"base_url": "http://b", "rate_limit": {}}}},
        # A hand-edited row with secrets in the clear: shown masked anyway.
        {"actor": "carol", "action": "user.set_password", "target": "dave",
         "before": {"password": "hunter2hunter2"},
         "after": {"password": "correct-horse", "api_key": "sk-or-v1-0123456789abcdef"}},
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(T), rows)
    yield engine
    engine.dispose()


def test_changes_are_newest_first_with_filters_and_keyset(engine: Engine) -> None:
    assert [c.actor for c in history.changes(engine)] == ["carol", "bob", "alice"]
    assert [c.actor for c in history.changes(engine, target="p1")] == ["bob", "alice"]
    assert [c.action for c in history.changes(engine, actor="alice")] == ["provider.create"]
    first = history.changes(engine, limit=2)
    assert [c.actor for c in history.changes(engine, before_id=first[-1].id)] == ["alice"]
    assert history.choices(engine, "actor") == ["alice", "bob", "carol"]


def test_differences_name_each_changed_field_by_path(engine: Engine) -> None:
    (update,) = history.changes(engine, action="provider.update")
    found = {(d.field, d.kind, d.before, d.after) for d in update.differences}
    assert found == {
        ("config.base_url", "changed", "http://a", "http://b"),
        ("config.rate_limit.requests_per_minute", "removed", 60, history._ABSENT),
    }
    (create,) = history.changes(engine, action="provider.create")
    assert {d.field for d in create.differences} == {
        "name",
        "config.base_url",
        "config.rate_limit.requests_per_minute",
        "api_key",
    }
    assert all(d.kind == "added" for d in create.differences)


def test_secrets_appear_only_masked(engine: Engine) -> None:
    (change,) = history.changes(engine, actor="carol")
    text = repr(change)
    assert "hunter2" not in text and "correct-horse" not in text and "0123456789" not in text
    values = {d.field: (d.before, d.after) for d in change.differences}
    assert values["password"] == (history.HIDDEN, history.HIDDEN)
    assert values["api_key"][1] == "sk-or-…cdef"


def test_bad_arguments_are_clear_errors(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="give 1 to 500"):
        history.changes(engine, limit=0)
    with pytest.raises(ConfigError, match="use actor, action or target"):
        history.choices(engine, "before")
