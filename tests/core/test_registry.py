"""The provider registry: defaults, audit rows, one transaction per change, env fallback, TTL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gatehouse_core.crypto import SecretBox, generate_key
from gatehouse_core.db import make_engine
from gatehouse_core.errors import (
    ConfigError,
    GatehouseError,
    NotFound,
    ReadOnlyProvider,
    SecretsError,
    ValidationError,
)
from gatehouse_core.providers import ProviderConfig, RateLimit
from gatehouse_core.registry import Registry
from gatehouse_core.schema import ProviderSecret, SettingsAudit, SystemSetting

KEY_A = "sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1b2"
KEY_B = "sk-or-v1-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbc3d4"
ENV_KEY = "sk-or-v1-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee9f8e"
SEED_CONFIG = {
    "base_url": "https://openrouter.ai/api/v1",
    "default_model": "anthropic/claude-sonnet-4",
    "rate_limit": {
        "requests_per_minute": 400,
        "tokens_per_minute": 4000000,
        "concurrent_requests": 50,
    },
    "headers": {"HTTP-Referer": "https://gatehouse.example", "X-Title": "GateHouse"},
}
CODEGEN = {
    "CODEGEN_PROVIDER": "openrouter",
    "CODEGEN_API_KEY": ENV_KEY,
    "CODEGEN_URL": "https://openrouter.ai/api/v1",
    "CODEGEN_MODEL": "openai/gpt-4o-mini",
}


def cfg(name: str, **changes: Any) -> ProviderConfig:
    return ProviderConfig(name=name, priority=changes.pop("priority", 1)).with_changes(**changes)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(sqlite_engine: Engine) -> Registry:
    return Registry(sqlite_engine, SecretBox.from_env(), env={})


def stored_state(engine: Engine) -> tuple[Any, list[tuple[str, str, str]], int]:
    """The raw document, the secret rows and the audit row count, read past the registry."""
    with Session(engine) as s:
        row = s.get(SystemSetting, "llm_providers")
        secrets = [
            (r.provider_name, r.ciphertext, r.key_fingerprint)
            for r in s.scalars(select(ProviderSecret).order_by(ProviderSecret.provider_name))
        ]
        audits = len(s.scalars(select(SettingsAudit.id)).all())
        return (row.value if row else None), secrets, audits


def audit_rows(engine: Engine) -> list[SettingsAudit]:
    with Session(engine) as s:
        return list(s.scalars(select(SettingsAudit).order_by(SettingsAudit.id)))


def defaults(reg: Registry) -> list[str]:
    return [v.name for v in reg.providers() if v.config.is_default]


# ---- stored shape --------------------------------------------------------------------------


def test_stored_document_is_exactly_the_seed_shape(engine: Engine) -> None:
    reg = Registry(engine, SecretBox.from_env(), env={})
    seed = ProviderConfig.from_json({"name": "openrouter-primary", "config": SEED_CONFIG})
    reg.add(seed, actor="alice", api_key=KEY_A)
    document, secrets, _ = stored_state(engine)
    assert document == {
        "providers": [
            {
                "name": "openrouter-primary",
                "type": "openrouter",
                "is_default": True,
                "priority": 1,
                "enabled": True,
                "config": SEED_CONFIG,
            }
        ]
    }
    assert [name for name, _, _ in secrets] == ["openrouter-primary"]
    assert reg.api_key("openrouter-primary") == KEY_A


def test_document_lists_providers_by_priority(registry: Registry) -> None:
    registry.add(cfg("second", priority=2), actor="a")
    registry.add(cfg("first", priority=1), actor="a")
    names = [p["name"] for p in registry.document()["providers"]]
    assert names == ["first", "second"]


# ---- the one default -----------------------------------------------------------------------


def test_first_provider_becomes_the_default(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    assert defaults(registry) == ["a"]


def test_adding_a_new_default_unsets_the_old_one(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    registry.add(cfg("b", priority=2, is_default=True), actor="t")
    assert defaults(registry) == ["b"]


def test_updating_to_default_unsets_the_old_one(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    registry.add(cfg("b", priority=2), actor="t")
    registry.update("b", actor="t", is_default=True)
    assert defaults(registry) == ["b"]


def test_removing_the_default_promotes_the_next_by_priority(registry: Registry) -> None:
    registry.add(cfg("a", priority=1), actor="t")
    registry.add(cfg("c", priority=3), actor="t")
    registry.add(cfg("b", priority=2), actor="t")
    registry.remove("a", actor="t")
    assert defaults(registry) == ["b"]


def test_disabling_the_default_promotes_the_next_enabled_by_priority(registry: Registry) -> None:
    registry.add(cfg("a", priority=1), actor="t")
    registry.add(cfg("b", priority=2, enabled=False), actor="t")
    registry.add(cfg("c", priority=3), actor="t")
    registry.set_enabled("a", False, actor="t")
    assert defaults(registry) == ["c"]


def test_unsetting_the_default_hands_it_to_the_next_provider(registry: Registry) -> None:
    registry.add(cfg("a", priority=1), actor="t")
    registry.add(cfg("b", priority=2), actor="t")
    registry.update("a", actor="t", is_default=False)
    assert defaults(registry) == ["b"]


def test_disabling_the_only_provider_leaves_no_default(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    registry.set_enabled("a", False, actor="t")
    assert defaults(registry) == []
    registry.set_enabled("a", True, actor="t")
    assert defaults(registry) == ["a"]


def test_adding_a_disabled_default_is_refused(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    with pytest.raises(ValidationError, match="disabled provider cannot be the default"):
        registry.add(cfg("b", enabled=False, is_default=True), actor="t")
    assert [v.name for v in registry.providers()] == ["a"]


# ---- audit ---------------------------------------------------------------------------------


def test_each_change_writes_one_audit_row_with_the_key_masked(engine: Engine) -> None:
    reg = Registry(engine, SecretBox.from_env(), env={})
    steps = [
        ("provider.create", "a", lambda: reg.add(cfg("a"), actor="alice", api_key=KEY_A)),
        ("provider.create", "b", lambda: reg.add(cfg("b", priority=2), actor="alice")),
        ("provider.update", "a", lambda: reg.update("a", actor="bob", requests_per_minute=60)),
        ("provider.disable", "b", lambda: reg.set_enabled("b", False, actor="bob")),
        ("provider.enable", "b", lambda: reg.set_enabled("b", True, actor="bob")),
        ("provider.set_key", "a", lambda: reg.set_key("a", KEY_B, actor="carol")),
        ("provider.reorder", "b,a", lambda: reg.reorder(["b", "a"], actor="carol")),
        ("provider.delete", "a", lambda: reg.remove("a", actor="dave")),
    ]
    for number, (action, target, step) in enumerate(steps, start=1):
        step()
        rows = audit_rows(engine)
        assert len(rows) == number, f"{action} wrote {len(rows) - number + 1} rows"
        assert (rows[-1].action, rows[-1].target) == (action, target)
    by_action = {(r.action, r.target): r for r in audit_rows(engine)}
    assert [r.actor for r in audit_rows(engine)] == ["alice"] * 2 + ["bob"] * 3 + ["carol"] * 2 + [
        "dave"
    ]

    created = by_action["provider.create", "a"]
    assert created.before is None
    assert created.after["api_key"] == "sk-or-…a1b2"
    assert created.after["config"]["default_model"] == "anthropic/claude-sonnet-4"
    updated = by_action["provider.update", "a"]
    assert updated.before["config"]["rate_limit"] == {}
    assert updated.after["config"]["rate_limit"] == {"requests_per_minute": 60}
    assert by_action["provider.disable", "b"].after["enabled"] is False
    key_change = by_action["provider.set_key", "a"]
    assert (key_change.before["api_key"], key_change.after["api_key"]) == (
        "sk-or-…a1b2",
        "sk-or-…c3d4",
    )
    assert by_action["provider.reorder", "b,a"].before == {"order": ["a", "b"]}
    assert by_action["provider.reorder", "b,a"].after == {"order": ["b", "a"]}
    deleted = by_action["provider.delete", "a"]
    assert deleted.before["api_key"] == "sk-or-…c3d4" and deleted.after is None

    dump = repr([(r.before, r.after, r.target) for r in audit_rows(engine)])
    assert KEY_A not in dump and KEY_B not in dump


def test_history_is_newest_first_and_limited(registry: Registry) -> None:
    for name in ("a", "b", "c"):
        registry.add(cfg(name), actor="t")
    entries = registry.history(limit=2)
    assert [e.target for e in entries] == ["c", "b"]
    assert set(entries[0].to_json()) == {
        "id",
        "created_at",
        "actor",
        "action",
        "target",
        "before",
        "after",
    }


def test_long_reorder_target_is_clipped_to_fit_the_column(registry: Registry) -> None:
    names = [f"provider-{i:02d}-" + "x" * 40 for i in range(6)]
    for priority, name in enumerate(names, start=1):
        registry.add(cfg(name, priority=priority), actor="t")
    registry.reorder(list(reversed(names)), actor="t")
    entry = registry.history(limit=1)[0]
    assert len(entry.target) <= 200
    assert entry.after == {"order": list(reversed(names))}


# ---- one transaction -----------------------------------------------------------------------


def test_failed_validation_leaves_document_secrets_and_audit_unchanged(engine: Engine) -> None:
    reg = Registry(engine, SecretBox.from_env(), env={})
    reg.add(cfg("a"), actor="t", api_key=KEY_A)
    before = stored_state(engine)
    with pytest.raises(ValidationError, match="default_model"):
        reg.update("a", actor="t", api_key=KEY_B, default_model="not-a-model")
    with pytest.raises(ValidationError, match="already exists"):
        reg.add(cfg("a"), actor="t", api_key=KEY_B)
    with pytest.raises(ValidationError, match="priority"):
        reg.add(cfg("b", priority=0), actor="t", api_key=KEY_B)
    assert stored_state(engine) == before


def _refuse_audit_inserts(engine: Engine) -> None:
    """A real database failure in the middle of a change: the audit insert is rejected."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON settings_audit "
                    "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON settings_audit "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )


def test_database_error_midway_rolls_back_document_and_secret(engine: Engine) -> None:
    reg = Registry(engine, SecretBox.from_env(), env={})
    reg.add(cfg("a"), actor="t", api_key=KEY_A)
    before = stored_state(engine)
    _refuse_audit_inserts(engine)
    with pytest.raises(GatehouseError, match="audit refused.*Nothing was saved") as caught:
        reg.update("a", actor="t", api_key=KEY_B, default_model="openai/gpt-4o")
    assert "\n" not in str(caught.value)
    with pytest.raises(GatehouseError, match="audit refused"):
        reg.add(cfg("b", priority=2), actor="t", api_key=KEY_B)
    with pytest.raises(GatehouseError, match="audit refused"):
        reg.remove("a", actor="t")
    assert stored_state(engine) == before
    assert reg.api_key("a") == KEY_A


def test_bad_api_key_is_refused_before_anything_is_written(registry: Registry) -> None:
    for bad, reason in (("", "empty"), ("sk-or- v1", "spaces"), ("sk-or-v1-x\n", "spaces")):
        with pytest.raises(ValidationError, match=reason):
            registry.add(cfg("a"), actor="t", api_key=bad)
    with pytest.raises(ValidationError, match="too short"):
        registry.add(cfg("a"), actor="t", api_key="sk-1")
    assert registry.providers() == []
    assert registry.history() == []


def test_unknown_provider_is_not_found_with_a_hint(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    for change in (
        lambda: registry.update("nope", actor="t", priority=2),
        lambda: registry.remove("nope", actor="t"),
        lambda: registry.set_enabled("nope", False, actor="t"),
        lambda: registry.set_key("nope", KEY_A, actor="t"),
        lambda: registry.reorder(["nope", "a"], actor="t"),
        lambda: registry.get("nope"),
    ):
        with pytest.raises(NotFound, match="No provider named 'nope'.*providers list"):
            change()
    assert len(registry.history()) == 1


def test_update_of_an_unknown_or_fixed_field_is_refused(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    for field in ("colour", "source"):
        with pytest.raises(ValidationError, match=f"{field}: not a changeable field"):
            registry.update("a", actor="t", **{field: "x"})
    assert len(registry.history()) == 1


def test_reorder_sets_priorities_and_keeps_unlisted_after(registry: Registry) -> None:
    for priority, name in enumerate(("a", "b", "c"), start=1):
        registry.add(cfg(name, priority=priority), actor="t")
    registry.reorder(["c"], actor="t")
    assert [(v.name, v.config.priority) for v in registry.providers()] == [
        ("c", 1),
        ("a", 2),
        ("b", 3),
    ]


# ---- environment fallback ------------------------------------------------------------------


def test_env_provider_is_listed_read_only_when_the_database_has_none(
    sqlite_engine: Engine,
) -> None:
    reg = Registry(sqlite_engine, SecretBox.from_env(), env=CODEGEN)
    [view] = reg.providers()
    assert view.name == "env"
    assert view.config.source == "environment" and view.config.read_only
    assert view.config.is_default and view.config.default_model == "openai/gpt-4o-mini"
    assert view.to_json()["api_key"] == "sk-or-…9f8e"
    assert view.key_status == "ok"
    assert reg.snapshot().get("env").api_key == ENV_KEY


def test_env_provider_uses_the_documented_defaults(sqlite_engine: Engine) -> None:
    reg = Registry(sqlite_engine, SecretBox.from_env(), env={"CODEGEN_API_KEY": ENV_KEY})
    config = reg.get("env").config
    assert (config.type, config.base_url, config.default_model) == (
        "openrouter",
        "https://openrouter.ai/api/v1",
        "anthropic/claude-sonnet-4",
    )


def test_no_env_provider_without_codegen_variables(registry: Registry) -> None:
    assert registry.providers() == []
    assert registry.snapshot().providers == ()


def test_changing_the_env_provider_raises_read_only(sqlite_engine: Engine) -> None:
    reg = Registry(sqlite_engine, SecretBox.from_env(), env=CODEGEN)
    for change in (
        lambda: reg.update("env", actor="t", priority=2),
        lambda: reg.remove("env", actor="t"),
        lambda: reg.set_enabled("env", False, actor="t"),
        lambda: reg.set_key("env", KEY_A, actor="t"),
        lambda: reg.reorder(["env"], actor="t"),
    ):
        with pytest.raises(ReadOnlyProvider, match="CODEGEN_"):
            change()
    assert reg.history() == []


def test_a_database_provider_replaces_the_env_provider(engine: Engine) -> None:
    reg = Registry(engine, SecretBox.from_env(), env=CODEGEN)
    assert [v.name for v in reg.providers()] == ["env"]
    reg.add(cfg("primary"), actor="t", api_key=KEY_A)
    assert [v.name for v in reg.providers()] == ["primary"]
    assert [p.config.name for p in reg.snapshot().ordered()] == ["primary"]
    assert reg.snapshot().get("primary").api_key == KEY_A


# ---- keys ----------------------------------------------------------------------------------


def test_key_encrypted_under_a_missing_key_names_the_provider(sqlite_engine: Engine) -> None:
    old = generate_key()
    Registry(sqlite_engine, SecretBox([old]), env={}).add(cfg("a"), actor="t", api_key=KEY_A)
    reg = Registry(sqlite_engine, SecretBox([generate_key()]), env={})
    assert reg.undecryptable() == ["a"]
    assert reg.get("a").key_status == "undecryptable"
    with pytest.raises(SecretsError, match="of a:.*<new>,<old>.*secrets rotate"):
        reg.api_key("a")
    assert "a:" in reg.snapshot().get("a").key_error
    assert reg.snapshot().get("a").api_key is None


def test_rotation_reencrypts_under_the_first_key_and_is_audited(sqlite_engine: Engine) -> None:
    old, new = generate_key(), generate_key()
    Registry(sqlite_engine, SecretBox([old]), env={}).add(cfg("a"), actor="t", api_key=KEY_A)
    report = Registry(sqlite_engine, SecretBox([new, old]), env={}).rotate_secrets(actor="ops")
    assert (report.rotated, report.total) == (1, 1)
    assert Registry(sqlite_engine, SecretBox([new]), env={}).api_key("a") == KEY_A
    entry = Registry(sqlite_engine, SecretBox([new]), env={}).history(limit=1)[0]
    assert (entry.action, entry.actor, entry.after["rotated"]) == ("secrets.rotate", "ops", 1)


def test_rotation_with_the_old_key_missing_changes_nothing(sqlite_engine: Engine) -> None:
    Registry(sqlite_engine, SecretBox([generate_key()]), env={}).add(
        cfg("a"), actor="t", api_key=KEY_A
    )
    before = stored_state(sqlite_engine)
    with pytest.raises(SecretsError, match="of a:"):
        Registry(sqlite_engine, SecretBox([generate_key()]), env={}).rotate_secrets(actor="t")
    assert stored_state(sqlite_engine) == before


# ---- change detection ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_is_reused_within_the_ttl_and_refreshed_after(sqlite_engine: Engine) -> None:
    writer = Registry(sqlite_engine, SecretBox.from_env(), env={})
    writer.add(cfg("a"), actor="t", api_key=KEY_A)
    clock = FakeClock()
    reader = Registry(sqlite_engine, SecretBox.from_env(), env={}, ttl=2, clock=clock)
    first = reader.snapshot()
    writer.update("a", actor="t", default_model="openai/gpt-4o")
    clock.now += 1
    assert reader.snapshot() is first  # within the TTL: no database round trip
    clock.now += 1.5
    assert reader.snapshot().get("a").config.default_model == "openai/gpt-4o"


def test_own_change_is_seen_at_once(registry: Registry) -> None:
    registry.add(cfg("a"), actor="t")
    registry.snapshot()
    registry.update("a", actor="t", default_model="openai/gpt-4o")
    assert registry.snapshot().get("a").config.default_model == "openai/gpt-4o"


def test_change_made_by_another_process_is_seen_without_rebuilding(
    engine: Engine, db_url: str
) -> None:
    box = SecretBox.from_env()
    Registry(engine, box, env={}).add(
        cfg("a", rate_limit=RateLimit(requests_per_minute=10)), actor="t", api_key=KEY_A
    )
    clock = FakeClock()
    reader = Registry(engine, box, env={}, ttl=2, clock=clock)
    assert reader.snapshot().get("a").config.default_model == "anthropic/claude-sonnet-4"

    env = {**os.environ, "GATEHOUSE_DATABASE_URL": db_url, "NEW_KEY": KEY_B}
    argv = [sys.executable, "-m", "gatehouse_core", "providers", "update", "a"]
    argv += ["--model", "openai/gpt-4o", "--rpm", "99", "--api-key-env", "NEW_KEY"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    assert reader.snapshot().get("a").config.default_model == "anthropic/claude-sonnet-4"
    clock.now += 2.5  # past the TTL: one version check notices the other process's change
    changed = reader.snapshot().get("a")
    assert changed.config.default_model == "openai/gpt-4o"
    assert changed.config.rate_limit.requests_per_minute == 99
    assert changed.api_key == KEY_B


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (["not", "an", "object"], 'not an object with a "providers" list'),
        ({"providers": "openrouter"}, 'not an object with a "providers" list'),
        ({"providers": [42]}, "providers[0] is not an object with a name and a config"),
        (
            {"providers": [{"name": "a", "config": {"rate_limit": [400]}}]},
            "providers[0].config.rate_limit is not an object",
        ),
    ],
)
def test_a_hand_broken_document_gives_a_clear_error_not_a_crash(
    sqlite_url: str, document: object, detail: str
) -> None:
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        s.add(SystemSetting(key="llm_providers", value=document))
    registry = Registry(engine, SecretBox.from_env(), ttl=0)
    for read in (registry.providers, registry.snapshot):
        with pytest.raises(ConfigError, match="llm_providers.*malformed") as caught:
            read()
        assert detail in str(caught.value)
    engine.dispose()


# ---- a blackholed database never stalls callers --------------------------------------------


def test_blackholed_database_serves_the_cached_snapshot_to_every_caller(
    postgres_url: str,
) -> None:
    import threading

    from sqlalchemy.engine import make_url

    from tests.fakes.tcp_proxy import BlackholeProxy

    target = make_url(postgres_url)
    proxy = BlackholeProxy(target.port or 5432).start()
    engine = make_engine(target.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        reg = Registry(engine, SecretBox.from_env(), env={}, ttl=0)
        reg.add(cfg("a"), actor="t", api_key=KEY_A)
        first = reg.snapshot()
        proxy.blackhole()  # accepts TCP, never answers: every query now hangs

        got: list[object] = []
        threads = [threading.Thread(target=lambda: got.append(reg.snapshot())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)  # a bound for a broken build, not a timing assertion
        assert not any(t.is_alive() for t in threads), "a caller waited on the blackholed DB"
        assert got == [first] * 8
        # Nobody waited for the check: it is still hanging on the blackholed connection.
        assert reg.check_in_flight

        proxy.stop()  # the hanging connection breaks: the check ends, the cache kept serving
        proxy.restore()
        proxy.start()
        for _ in range(200):
            if not reg.check_in_flight:
                break
            threading.Event().wait(0.05)
        assert not reg.check_in_flight
        reg.update("a", actor="t", default_model="openai/gpt-4o")
        assert reg.snapshot().get("a").config.default_model == "openai/gpt-4o"
    finally:
        proxy.stop()
        engine.dispose()


# ---- writers are serialised: no lost updates -----------------------------------------------


def test_concurrent_writers_lose_no_update_and_keep_the_audit_chain(db_url: str) -> None:
    import threading

    Registry(make_engine(db_url), SecretBox.from_env(), env={}).add(
        cfg("a"), actor="t", api_key=KEY_A
    )
    rounds = 50
    errors: list[BaseException] = []

    def writer(edit: Any) -> None:
        engine = make_engine(db_url)  # its own engine and pool, like another process
        reg = Registry(engine, SecretBox.from_env(), env={})
        try:
            for i in range(1, rounds + 1):
                edit(reg, i)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [
        threading.Thread(
            target=writer,
            args=(lambda reg, i: reg.update("a", actor="x", headers_set={"X-A": str(i)}),),
        ),
        threading.Thread(
            target=writer,
            args=(lambda reg, i: reg.update("a", actor="y", requests_per_minute=i),),
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    engine = make_engine(db_url)
    final = Registry(engine, SecretBox.from_env(), env={}).get("a").config
    assert final.headers == {"X-A": str(rounds)}
    assert final.rate_limit.requests_per_minute == rounds
    updates = [r for r in audit_rows(engine) if r.action == "provider.update"]
    assert len(updates) == 2 * rounds
    broken = [
        (prev.id, row.id)
        for prev, row in zip(updates, updates[1:], strict=False)
        if row.before != prev.after
    ]
    assert broken == []  # each change starts from exactly what the previous one left
    engine.dispose()


def test_header_edits_keep_the_other_headers(registry: Registry) -> None:
    registry.add(
        cfg("a", headers={"X-Title": "GateHouse", "HTTP-Referer": "https://x.example"}), actor="t"
    )
    registry.update("a", actor="t", headers_set={"x-title": "New"}, headers_remove=["Nope"])
    registry.update("a", actor="t", headers_remove=["http-referer"])
    assert dict(registry.get("a").config.headers) == {"x-title": "New"}


# ---- a base URL on another host re-targets the stored key ----------------------------------


def test_moving_base_url_to_another_host_needs_the_key_or_a_confirmation(
    registry: Registry,
) -> None:
    registry.add(cfg("a", base_url="https://openrouter.ai/api/v1"), actor="t", api_key=KEY_A)
    before = stored_state(registry.engine)
    with pytest.raises(ValidationError) as caught:
        registry.update("a", actor="t", base_url="https://new.example/v1")
    assert "new.example" in caught.value.errors["base_url"]
    assert "--confirm-new-host new.example" in caught.value.errors["base_url"]
    assert stored_state(registry.engine) == before
    with pytest.raises(ValidationError):
        registry.update("a", actor="t", base_url="https://new.example/v1", confirm_host="other")
    registry.update("a", actor="t", base_url="https://new.example/v1", confirm_host="new.example")
    registry.update("a", actor="t", base_url="https://third.example/v1", api_key=KEY_B)
    assert registry.api_key("a") == KEY_B


def test_same_host_url_changes_and_keyless_providers_need_no_confirmation(
    registry: Registry,
) -> None:
    registry.add(cfg("a", base_url="http://openrouter.ai/api/v1"), actor="t", api_key=KEY_A)
    registry.update("a", actor="t", base_url="https://openrouter.ai/api/v2")
    with pytest.raises(ValidationError, match="openrouter.ai:8443"):
        registry.update("a", actor="t", base_url="https://openrouter.ai:8443/api/v2")
    registry.add(cfg("b", priority=2), actor="t")
    registry.update("b", actor="t", base_url="https://elsewhere.example/v1")


# ---- validation at every entry -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [KEY_A + "\u200b", "\ufeff" + KEY_A, KEY_A[:20] + "é" + KEY_A[20:], KEY_A + "\n", "sk or v1"],
)
def test_keys_with_invisible_or_non_ascii_characters_are_refused(
    registry: Registry, key: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        registry.add(cfg("a"), actor="t", api_key=key)
    assert KEY_A not in str(caught.value) and "api_key" in caught.value.errors
    assert stored_state(registry.engine)[0] is None


def test_base_url_with_credentials_is_refused_without_echoing_them(registry: Registry) -> None:
    with pytest.raises(ValidationError) as caught:
        registry.add(cfg("a", base_url="https://user:s3cretpw@openrouter.ai/api/v1"), actor="t")
    assert "user:pw@host" in caught.value.errors["base_url"]
    assert "s3cretpw" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://[fe80::1]/v1",
        "http://metadata.google.internal/v1",
        "http://2852039166/v1",
        "http://[::ffff:169.254.169.254]/v1",
    ],
)
def test_link_local_and_metadata_hosts_are_never_saved(registry: Registry, url: str) -> None:
    with pytest.raises(ValidationError, match="not an allowed provider host"):
        registry.add(cfg("a", base_url=url), actor="t")


def test_provider_hosts_allow_list_limits_saves(sqlite_engine: Engine) -> None:
    env = {"GATEHOUSE_PROVIDER_HOSTS": "openrouter.ai, *.corp.example"}
    reg = Registry(sqlite_engine, SecretBox.from_env(), env=env)
    reg.add(cfg("a"), actor="t")
    reg.add(cfg("b", priority=2, base_url="https://llm.corp.example/v1"), actor="t")
    with pytest.raises(ValidationError, match="GATEHOUSE_PROVIDER_HOSTS"):
        reg.add(cfg("c", priority=3, base_url="http://10.0.0.5:8080/v1"), actor="t")


# ---- hand-edited documents -----------------------------------------------------------------


def _provider_doc(**changes: Any) -> dict[str, Any]:
    item = {
        "name": "a",
        "priority": 1,
        "is_default": True,
        "enabled": True,
        "config": {
            "base_url": "https://openrouter.ai/api/v1",
            "default_model": "anthropic/claude-sonnet-4",
        },
    }
    config = changes.pop("config", {})
    item.update(changes)
    item["config"].update(config)
    return {"providers": [item]}


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (_provider_doc(priority="1"), "providers[0].priority is not a whole number"),
        (_provider_doc(config={"base_url": {"url": "x"}}), "providers[0].config.base_url is not"),
        (_provider_doc(enabled="yes"), "providers[0].enabled is not true or false"),
        (_provider_doc(config={"headers": {"X-Title": "Café"}}), "headers"),
        (_provider_doc(config={"rate_limit": {"requests_per_minute": "60"}}), "rate_limit"),
        (_provider_doc(config={"default_model": "a/b\n"}), "default_model"),
    ],
)
def test_hand_edited_wrong_types_give_one_clear_config_error(
    sqlite_url: str, document: object, detail: str
) -> None:
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        s.add(SystemSetting(key="llm_providers", value=document))
    registry = Registry(engine, SecretBox.from_env(), ttl=0, env={})
    for read in (registry.providers, registry.snapshot):
        with pytest.raises(ConfigError, match="llm_providers.*malformed") as caught:
            read()
        assert detail in str(caught.value)
    engine.dispose()


def test_a_missing_base_url_is_an_error_never_openrouter(sqlite_url: str) -> None:
    document = _provider_doc()
    del document["providers"][0]["config"]["base_url"]
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        s.add(SystemSetting(key="llm_providers", value=document))
    with pytest.raises(ConfigError, match=r"providers\[0\].config.base_url is missing"):
        Registry(engine, SecretBox.from_env(), env={}).snapshot()
    engine.dispose()


def test_non_json_text_is_a_config_error(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO system_settings (key, value, updated_at) VALUES "
                "('llm_providers', '{not json', '2026-01-01 00:00:00.000000')"
            )
        )
    with pytest.raises(ConfigError, match="not valid JSON"):
        Registry(engine, SecretBox.from_env(), env={}).providers()
    engine.dispose()


def test_the_last_good_snapshot_keeps_serving_after_a_bad_hand_edit(
    sqlite_engine: Engine,
) -> None:
    reg = Registry(sqlite_engine, SecretBox.from_env(), env={}, ttl=0)
    reg.add(cfg("a"), actor="t", api_key=KEY_A)
    good = reg.snapshot()
    with Session(sqlite_engine) as s, s.begin():
        row = s.get(SystemSetting, "llm_providers")
        row.value = _provider_doc(priority="high")
        row.updated_at = row.updated_at.replace(year=2030)
    assert reg.snapshot() is good
    with pytest.raises(ConfigError, match="priority"):
        reg.providers()
    with pytest.raises(ConfigError, match="priority"):  # a forced read reports it
        reg.snapshot(force=True)
    assert reg.snapshot() is good


# ---- secrets rotation gives running workers grace -----------------------------------------


def test_a_worker_without_the_new_secrets_key_keeps_serving_a_rotated_key(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = generate_key(), generate_key()
    Registry(sqlite_engine, SecretBox([old]), env={}).add(cfg("a"), actor="t", api_key=KEY_A)
    worker = Registry(sqlite_engine, SecretBox([old]), env={}, ttl=0)
    assert worker.snapshot().get("a").api_key == KEY_A
    admin = Registry(sqlite_engine, SecretBox([new, old]), env={})
    admin.rotate_secrets(actor="ops")
    caplog.set_level("WARNING", logger="gatehouse.registry")
    served = worker.snapshot().get("a")
    assert (served.api_key, served.key_error) == (KEY_A, None)
    assert "re-encrypted with a secrets key this process does not have" in caplog.text
    assert KEY_A not in caplog.text

    admin.set_key("a", KEY_B, actor="ops")  # a different key: no grace, the worker says so
    replaced = worker.snapshot().get("a")
    assert replaced.api_key is None and "cannot decrypt" in replaced.key_error.lower()


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("https://user:s3cretpw@openrouter.ai/api/v1", "user:pw@host"),
        ("http://169.254.169.254/v1", "not an allowed provider host"),
        ("https://openrouter.ai/api/v1\r\nX: 1", "not an http(s) URL"),
    ],
)
def test_an_invalid_codegen_url_is_a_config_error_naming_the_variable(
    sqlite_engine: Engine, url: str, detail: str
) -> None:
    reg = Registry(sqlite_engine, SecretBox.from_env(), env={**CODEGEN, "CODEGEN_URL": url})
    with pytest.raises(ConfigError, match="CODEGEN_URL") as caught:
        reg.snapshot()
    assert detail in str(caught.value) and "s3cretpw" not in str(caught.value)


def test_two_first_adds_at_once_both_land(db_url: str) -> None:
    import threading

    make_engine(db_url).dispose()  # migrated once, so both threads start on the same schema
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def add(name: str) -> None:
        engine = make_engine(db_url)
        try:
            barrier.wait()
            Registry(engine, SecretBox.from_env(), env={}).add(cfg(name), actor=name)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=add, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    engine = make_engine(db_url)
    assert sorted(v.name for v in Registry(engine, SecretBox.from_env(), env={}).providers()) == [
        "a",
        "b",
    ]
    engine.dispose()
