"""The provider registry: load and change `llm_providers`, their encrypted keys, and the audit.

Every change is one transaction: the JSON document, the secret and the `settings_audit`
row commit together or not at all. Readers in other processes notice a change through
the document's `updated_at` (checked at most every GATEHOUSE_CONFIG_TTL seconds), so a
change takes effect without a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import settings
from .crypto import SecretBox, key_prefix, mask
from .db import make_engine, transaction, unreachable
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    NotFound,
    ReadOnlyProvider,
    SecretsError,
    ValidationError,
)
from .hosts import host_error
from .providers import (
    DEFAULT_BASE_URL,
    PROVIDER_TYPES,
    RATE_LIMIT_FIELDS,
    ProviderConfig,
    api_key_error,
    fallback_order,
    parse_document,
    validate_set,
)
from .schema import ProviderSecret, SettingsAudit, SystemSetting, utcnow
from .telemetry import register_secret

log = logging.getLogger("gatehouse.registry")

PROVIDERS_KEY = "llm_providers"
ENV_PROVIDER = "env"
# The name is the identity (add a new provider instead of renaming); source is not stored.
_CHANGEABLE = frozenset(
    {f.name for f in dataclasses.fields(ProviderConfig)} - {"name", "source"}
) | frozenset(RATE_LIMIT_FIELDS)
_DESCRIPTION = "LLM provider configurations (API keys live encrypted in provider_secrets)"
# How long a caller holding a snapshot waits for the version check it started (a healthy
# check takes milliseconds); the first snapshot of a process may wait longer.
CHECK_TIMEOUT = 1.0
FIRST_CHECK_TIMEOUT = 15.0
# Server-side bound on the version query (PostgreSQL), beside the engine's connect_timeout.
CHECK_STATEMENT_TIMEOUT_MS = 2000


@dataclass
class _Check:
    """One version check in flight: callers wait on `done` (bounded) or serve the cache."""

    force: bool
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: BaseException | None = None
    pid: int = dataclasses.field(default_factory=os.getpid)  # a forked child starts afresh


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a stored key."""

    prefix: str
    last4: str
    fingerprint: str
    created_at: datetime | None
    rotated_at: datetime | None
    decryptable: bool

    @property
    def masked(self) -> str:
        return mask(self.prefix, self.last4)


@dataclass(frozen=True)
class ProviderView:
    """A provider as operators see it: config, masked key, where it came from."""

    config: ProviderConfig
    key: KeyInfo | None
    management_key: KeyInfo | None = None  # OpenRouter management key (ledger), if stored

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def key_status(self) -> str:
        if self.key is None:
            return "missing"
        return "ok" if self.key.decryptable else "undecryptable"

    def to_json(self) -> dict[str, Any]:
        """The documented `--json` shape: the stored config plus source and key display."""
        data = self.config.to_json()
        data["source"] = self.config.source
        data["api_key"] = self.key.masked if self.key else None
        data["key_status"] = self.key_status
        data["key_rotated_at"] = (
            self.key.rotated_at.isoformat() if self.key and self.key.rotated_at else None
        )
        data["management_key"] = self.management_key.masked if self.management_key else None
        return data


@dataclass(frozen=True)
class ResolvedProvider:
    """A provider with its decrypted key, for the gateway only. Never printed or logged."""

    config: ProviderConfig
    api_key: str | None = dataclasses.field(repr=False, default=None)
    key_error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything the gateway needs, read at once; `version` changes with any config change."""

    version: str
    providers: tuple[ResolvedProvider, ...]

    def ordered(self) -> list[ResolvedProvider]:
        by_name = {p.config.name: p for p in self.providers}
        return [by_name[c.name] for c in fallback_order([p.config for p in self.providers])]

    def get(self, name: str) -> ResolvedProvider | None:
        return next((p for p in self.providers if p.config.name == name), None)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class RotationReport:
    rotated: int
    total: int


def undecryptable_message(names: list[str]) -> str:
    return (
        f"Cannot decrypt the stored API key of {', '.join(names)}: it was encrypted with a key "
        "that is not in GATEHOUSE_SECRETS_KEY. Put the old key after the new one "
        "(GATEHOUSE_SECRETS_KEY=<new>,<old>) and run `gatehouse secrets rotate`; or set the "
        "key again with `gatehouse providers set-key`."
    )


class Registry:
    """Reads and changes provider configurations; the console and the CLI both use it."""

    def __init__(
        self,
        engine: Engine,
        box: SecretBox,
        *,
        env: Mapping[str, str] | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_timeout: float = CHECK_TIMEOUT,
        first_timeout: float = FIRST_CHECK_TIMEOUT,
    ):
        self.engine = engine
        self.box = box
        self._env = env
        self._ttl = settings.get_float("GATEHOUSE_CONFIG_TTL", env) if ttl is None else ttl
        self._clock = clock
        self._check_timeout = check_timeout
        self._first_timeout = first_timeout
        self._lock = threading.Lock()  # held only to start a check, never while it runs
        self._check: _Check | None = None
        # Which stored secret each decrypted key came from (rotation grace, see _resolve).
        self._key_rows: dict[str, tuple[Any, str, str]] = {}
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Registry:
        return cls(
            make_engine(settings.get("GATEHOUSE_DATABASE_URL", env)),
            SecretBox.from_env(env),
            env=env,
        )

    # ---- reads ---------------------------------------------------------------------------

    def providers(self) -> list[ProviderView]:
        """Database providers by priority, or the read-only `env` provider when there are none."""
        with self._session() as s:
            stored = self._stored_configs(s)
            secrets = {row.provider_name: row for row in s.scalars(select(ProviderSecret))}
        if not stored:
            env_config = self._env_provider()
            return [] if env_config is None else [ProviderView(env_config, self._env_key_info())]
        return [
            ProviderView(
                c,
                self._key_info(secrets.get(c.name)),
                self._management_info(secrets.get(c.name)),
            )
            for c in _by_priority(stored)
        ]

    def get(self, name: str) -> ProviderView:
        for view in self.providers():
            if view.name == name:
                return view
        raise NotFound(f"No provider named {name!r}; `gatehouse providers list` shows them")

    def next_priority(self) -> int:
        """The priority that puts a new provider last in the fallback order."""
        stored = [v.config.priority for v in self.providers() if not v.config.read_only]
        return max(stored, default=0) + 1

    def document(self) -> dict[str, Any]:
        """The stored `llm_providers` JSON as it is in the database."""
        with self._session() as s:
            row = s.get(SystemSetting, PROVIDERS_KEY)
            return dict(row.value) if row else {"providers": []}

    def history(self, limit: int = 50) -> list[AuditEntry]:
        with self._session() as s:
            rows = s.scalars(
                select(SettingsAudit).order_by(SettingsAudit.id.desc()).limit(limit)
            ).all()
        return [
            AuditEntry(r.id, r.created_at, r.actor, r.action, r.target, r.before, r.after)
            for r in rows
        ]

    def undecryptable(self) -> list[str]:
        """Providers whose key was encrypted with a key missing from GATEHOUSE_SECRETS_KEY."""
        with self._session() as s:
            rows = s.scalars(select(ProviderSecret).order_by(ProviderSecret.provider_name))
            return [r.provider_name for r in rows if not self._decryptable(r)]

    def _decryptable(self, row: ProviderSecret) -> bool:
        """Both of the row's keys (API key, and the management key when stored) can be read."""
        management = row.management_key_fingerprint
        return self.box.can_decrypt(row.key_fingerprint) and (
            management is None or self.box.can_decrypt(management)
        )

    def check_secrets(self) -> None:
        """Raise SecretsError naming every provider whose key cannot be decrypted."""
        names = self.undecryptable()
        if names:
            raise SecretsError(undecryptable_message(names))

    def api_key(self, name: str) -> str | None:
        """The decrypted key of one provider (SecretsError names it when it cannot be read)."""
        resolved = self.snapshot(force=True).get(name)
        if resolved is None:
            raise NotFound(f"No provider named {name!r}; `gatehouse providers list` shows them")
        if resolved.key_error:
            raise SecretsError(resolved.key_error)
        return resolved.api_key

    def management_key(self, name: str) -> str | None:
        """The decrypted management key of a stored provider, or None when none is stored.

        Read on demand (reconciliation), never part of the gateway's snapshot; the key is
        registered with the log scrubber like every decrypted API key."""
        with self._session() as s:
            row = s.get(ProviderSecret, name)
            ciphertext = row.management_ciphertext if row is not None else None
        if ciphertext is None:
            return None
        try:
            key = self.box.open(ciphertext)
        except SecretsError:
            raise SecretsError(
                f"Cannot decrypt the stored management key of {name}: it was encrypted with a "
                "key that is not in GATEHOUSE_SECRETS_KEY. Set it again with `gatehouse "
                f"providers set-management-key {name}`."
            ) from None
        register_secret(key)
        return key

    def snapshot(self, *, force: bool = False) -> Snapshot:
        """The current providers with keys, re-read only when the stored version changed.

        Never blocks a call on the database once there is a snapshot: at most one thread at a
        time checks the stored version (single-flight, on a helper thread); while that check
        is in flight every other caller gets the last snapshot at once, and the caller that
        started it waits at most `check_timeout` seconds. If the check fails or hangs (a
        blackholed database), the last snapshot keeps serving, with a warning. The first
        snapshot, and a forced one, wait for the check (at most `first_timeout` seconds).
        """
        current = self._snapshot
        if current is not None and not force and self._clock() - self._checked_at < self._ttl:
            return current
        check, started = self._start_check(force)
        if current is not None and not force:
            if started:
                check.done.wait(self._check_timeout)
            return self._snapshot or current
        if not check.done.wait(self._first_timeout):
            if current is not None:
                return current
            raise DatabaseUnavailable(
                f"The database did not answer the provider configuration query within "
                f"{self._first_timeout:g} s. Check GATEHOUSE_DATABASE_URL and that the "
                "server is running."
            )
        # A forced read wants the stored truth: a malformed document is reported, while an
        # unreachable database still falls back to the last snapshot.
        # (Here the caller has no snapshot yet, or forced the read.)
        error = check.error
        if error is not None and (current is None or not isinstance(error, DatabaseUnavailable)):
            raise error
        return self._snapshot or current  # type: ignore[return-value]

    @property
    def check_in_flight(self) -> bool:
        """True while a version check runs (for tests and health pages)."""
        check = self._check
        return check is not None and not check.done.is_set()

    def _start_check(self, force: bool) -> tuple[_Check, bool]:
        """The check in flight, or a new one; True when this caller started it."""
        with self._lock:
            check = self._check
            usable = check is not None and not check.done.is_set() and check.pid == os.getpid()
            if usable and (check.force or not force):
                return check, False  # type: ignore[return-value]
            check = _Check(force=force)
            self._check = check
        threading.Thread(
            target=self._run_check, args=(check,), name="gatehouse-config-check", daemon=True
        ).start()
        return check, True

    def _run_check(self, check: _Check) -> None:
        current = self._snapshot
        try:
            version = self._stored_version()
            if check.force or current is None or version != current.version:
                loaded = self._load_snapshot()
                with self._lock:
                    # A check superseded by a newer one (after a change) must not put back
                    # the older configuration it read.
                    if self._check is check or self._snapshot is None:
                        self._snapshot = loaded
        except (DatabaseUnavailable, ConfigError) as exc:
            check.error = exc
            if current is not None:
                log.warning("provider config check failed; using the cached configuration: %s", exc)
        except Exception as exc:  # reported to the waiting caller, never lost on a thread
            check.error = exc
        finally:
            # Stamped when the check finished, so callers that queued meanwhile do not repeat it.
            self._checked_at = self._clock()
            check.done.set()

    # ---- writes --------------------------------------------------------------------------

    def add(self, config: ProviderConfig, *, actor: str, api_key: str | None = None) -> None:
        def change(providers: list[ProviderConfig]) -> list[ProviderConfig]:
            if any(p.name == config.name for p in providers):
                raise ValidationError({"name": f"a provider named {config.name!r} already exists"})
            added = dataclasses.replace(config, source="database")
            if not providers and added.enabled:
                added = dataclasses.replace(added, is_default=True)  # the first one is the default
            return _settle_default(
                [*providers, added], prefer=added.name if added.is_default else None
            )

        self._mutate(actor, "provider.create", config.name, change, api_key=api_key)

    def update(
        self,
        name: str,
        *,
        actor: str,
        api_key: str | None = None,
        headers_set: Mapping[str, str] | None = None,
        headers_remove: list[str] | tuple[str, ...] = (),
        confirm_host: str | None = None,
        **changes: Any,
    ) -> None:
        """Change fields of a provider (rate-limit fields may be given flat).

        `headers_set` / `headers_remove` edit single headers inside the change's transaction
        (no read-then-write by the caller). A `base_url` on another host needs the key again
        (`api_key`) or `confirm_host` naming the new host: else the stored key would go there.
        """
        unknown = sorted(set(changes) - _CHANGEABLE)
        if unknown:
            allowed = ", ".join(sorted(_CHANGEABLE))
            raise ValidationError(
                {f: f"not a changeable field; use one of {allowed}" for f in unknown}
            )

        def change(providers: list[ProviderConfig]) -> list[ProviderConfig]:
            current = _find(providers, name)
            fields = dict(changes)
            if headers_set or headers_remove:
                headers = dict(fields.get("headers", current.headers))
                removed = {h.lower() for h in headers_remove}
                headers = {k: v for k, v in headers.items() if k.lower() not in removed}
                for key, value in (headers_set or {}).items():
                    # Header names ignore case: X-Title replaces x-title.
                    headers = {k: v for k, v in headers.items() if k.lower() != key.lower()}
                    headers[key] = value
                fields["headers"] = headers
            updated = current.with_changes(**fields)
            prefer = name if updated.is_default and not current.is_default else None
            if current.is_default and not updated.is_default:
                # Handing the default away: the next enabled provider takes it, not this one.
                prefer = _next_enabled(providers, exclude=name)
            return _settle_default(_swap(providers, updated), prefer=prefer)

        def guard(before: ProviderConfig | None, after: ProviderConfig | None, keyed: bool) -> None:
            if before is None or after is None or not keyed or api_key is not None:
                return
            moved_to = _moved_host(before.base_url, after.base_url)
            if moved_to and not _confirms(confirm_host, moved_to):
                raise ValidationError(
                    {
                        "base_url": (
                            f"the base URL moves {name} to another host ({moved_to}); the "
                            "stored API key would be sent there. Enter the key again (console: "
                            "Replace API key; CLI: --api-key-stdin), or confirm the new host "
                            f"(CLI: --confirm-new-host {moved_to})"
                        )
                    }
                )

        self._mutate(actor, "provider.update", name, change, api_key=api_key, guard=guard)

    def set_enabled(self, name: str, enabled: bool, *, actor: str) -> None:
        def change(providers: list[ProviderConfig]) -> list[ProviderConfig]:
            current = _find(providers, name)
            updated = dataclasses.replace(
                current, enabled=enabled, is_default=current.is_default and enabled
            )
            return _settle_default(_swap(providers, updated))

        action = "provider.enable" if enabled else "provider.disable"
        self._mutate(actor, action, name, change)

    def remove(self, name: str, *, actor: str) -> None:
        def change(providers: list[ProviderConfig]) -> list[ProviderConfig]:
            _find(providers, name)
            return _settle_default([p for p in providers if p.name != name])

        self._mutate(actor, "provider.delete", name, change, delete_secret=True)

    def set_key(self, name: str, api_key: str, *, actor: str) -> None:
        self._mutate(
            actor, "provider.set_key", name, lambda ps: (_find(ps, name), ps)[1], api_key=api_key
        )

    def set_management_key(self, name: str, management_key: str, *, actor: str) -> None:
        """Store or replace a provider's OpenRouter management key (encrypted, audited masked).

        The provider must be stored and hold its API key already: the management key sits in
        the same `provider_secrets` row, so removing the provider removes both."""
        self._refuse_env(name)
        problem = api_key_error(management_key)
        if problem:
            raise ValidationError({"management_key": problem.replace("API key", "key")})
        with transaction(self.engine, write_lock=True) as s:
            row = s.get(SystemSetting, PROVIDERS_KEY, with_for_update=True)
            _find(self._stored_configs(s, row), name)
            secret = s.get(ProviderSecret, name, with_for_update=True)
            if secret is None:
                raise ValidationError(
                    {
                        "management_key": f"{name} has no API key stored; store it first "
                        f"(`gatehouse providers set-key {name} --api-key-stdin`)"
                    }
                )
            before = self._management_info(secret)
            sealed = self.box.seal(management_key)
            secret.management_ciphertext = sealed.ciphertext
            secret.management_key_fingerprint = sealed.key_fingerprint
            secret.management_key_prefix = sealed.key_prefix
            secret.management_last4 = sealed.last4
            secret.management_rotated_at = utcnow()
            s.add(
                SettingsAudit(
                    actor=actor,
                    action="provider.set_management_key",
                    target=name,
                    before={"management_key": before.masked if before else None},
                    after={"management_key": mask(sealed.key_prefix, sealed.last4)},
                )
            )
        register_secret(management_key)

    def reorder(self, names: list[str], *, actor: str) -> None:
        """Set priorities 1..n in the given order (names not listed keep their place after)."""

        def change(providers: list[ProviderConfig]) -> list[ProviderConfig]:
            for n in names:
                _find(providers, n)
            rest = [p.name for p in _by_priority(providers) if p.name not in names]
            order = {n: i for i, n in enumerate([*names, *rest], start=1)}
            return [dataclasses.replace(p, priority=order[p.name]) for p in providers]

        for n in names:
            self._refuse_env(n)
        # The target column holds 200 characters; the full order is in before/after.
        target = _clip(",".join(names), 200)
        self._mutate(actor, "provider.reorder", target, change, audit=_order_audit)

    def rotate_secrets(self, *, actor: str) -> RotationReport:
        """Re-encrypt every stored key under the first secrets key, in one transaction."""
        self.check_secrets()
        with transaction(self.engine, write_lock=True) as s:
            rows = list(s.scalars(select(ProviderSecret).with_for_update()))
            rotated = 0
            for row in rows:
                if row.key_fingerprint != self.box.primary_fingerprint:
                    rotated += 1
                row.ciphertext = self.box.rotate(row.ciphertext)
                row.key_fingerprint = self.box.primary_fingerprint
                row.rotated_at = utcnow()
                if row.management_ciphertext is not None:
                    row.management_ciphertext = self.box.rotate(row.management_ciphertext)
                    row.management_key_fingerprint = self.box.primary_fingerprint
            report = RotationReport(rotated=rotated, total=len(rows))
            s.add(
                SettingsAudit(
                    actor=actor,
                    action="secrets.rotate",
                    target=f"{report.total} secrets",
                    before=None,
                    after={
                        "rotated": rotated,
                        "total": report.total,
                        "key": self.box.primary_fingerprint,
                    },
                )
            )
            self._touch(s, actor)
        self._invalidate()
        return report

    # ---- internals -----------------------------------------------------------------------

    def _mutate(
        self,
        actor: str,
        action: str,
        target: str,
        change: Callable[[list[ProviderConfig]], list[ProviderConfig]],
        *,
        api_key: str | None = None,
        delete_secret: bool = False,
        audit: Callable[[list[ProviderConfig], list[ProviderConfig]], tuple[Any, Any]]
        | None = None,
        guard: Callable[[ProviderConfig | None, ProviderConfig | None, bool], None] | None = None,
    ) -> None:
        """Apply `change` to the stored providers; document, secret and audit row commit together.

        `audit` builds the before/after JSON when the change is not about one provider.
        """
        self._refuse_env(target)
        if api_key is not None:
            _check_api_key(api_key)
        # One transaction that serialises writers: BEGIN IMMEDIATE on SQLite, the document
        # row locked FOR UPDATE on PostgreSQL; the read below is the one the write is based on.
        with transaction(self.engine, write_lock=True) as s:
            row = s.get(SystemSetting, PROVIDERS_KEY, with_for_update=True)
            before_list = self._stored_configs(s, row)
            after_list = change(list(before_list))
            validate_set(after_list)
            before_config = _named(before_list, target)
            after_config = _named(after_list, target)
            if after_config is not None and after_config != before_config:
                problem = host_error(after_config.base_url, self._env)
                if problem:
                    raise ValidationError({"base_url": problem})
            if guard is not None:
                guard(before_config, after_config, s.get(ProviderSecret, target) is not None)
            if audit is not None:
                before, after = audit(before_list, after_list)
            else:
                before = {p.name: p.to_json() for p in before_list}.get(target)
                after = {p.name: p.to_json() for p in after_list}.get(target)
            document = {"providers": [p.to_json() for p in _by_priority(after_list)]}
            if row is None:
                row = SystemSetting(key=PROVIDERS_KEY, value=document, description=_DESCRIPTION)
                s.add(row)
            row.value = document
            secret = s.get(ProviderSecret, target)
            if delete_secret and secret is not None:
                before = {**(before or {}), "api_key": mask(secret.key_prefix, secret.last4)}
                s.delete(secret)
            if api_key is not None:
                old_mask = mask(secret.key_prefix, secret.last4) if secret else None
                secret = self._store_key(s, secret, target, api_key)
                new_mask = mask(secret.key_prefix, secret.last4)
                if before is not None:  # a new provider has no "before", not a null key
                    before = {**before, "api_key": old_mask}
                after = {**(after or {}), "api_key": new_mask}
            s.add(
                SettingsAudit(actor=actor, action=action, target=target, before=before, after=after)
            )
            self._touch(s, actor, row)
        self._invalidate()

    def _store_key(
        self, s: Session, secret: ProviderSecret | None, name: str, api_key: str
    ) -> ProviderSecret:
        sealed = self.box.seal(api_key)
        if secret is None:
            secret = ProviderSecret(provider_name=name, created_at=utcnow())
            s.add(secret)
        secret.ciphertext = sealed.ciphertext
        secret.key_fingerprint = sealed.key_fingerprint
        secret.key_prefix = sealed.key_prefix
        secret.last4 = sealed.last4
        secret.rotated_at = utcnow()
        return secret

    def _touch(self, s: Session, actor: str, row: SystemSetting | None = None) -> None:
        """Bump the document's updated_at: the version other processes watch."""
        row = row or s.get(SystemSetting, PROVIDERS_KEY)
        if row is not None:
            row.updated_at = utcnow()
            row.updated_by = actor

    def _invalidate(self) -> None:
        """After our own change: the next snapshot() starts a fresh check and waits for it."""
        with self._lock:
            self._check = None
        self._checked_at = float("-inf")

    def _refuse_env(self, name: str) -> None:
        if name == ENV_PROVIDER and self._env_provider() is not None and not self._has_stored():
            raise ReadOnlyProvider(
                "The provider `env` is built from the CODEGEN_* environment variables and "
                "cannot be changed here; add a provider (it then replaces `env`)."
            )

    def _has_stored(self) -> bool:
        with self._session() as s:
            return bool(self._stored_configs(s))

    def _session(self) -> _ReadSession:
        return _ReadSession(self.engine)

    @staticmethod
    def _stored_configs(s: Session, row: SystemSetting | None = None) -> list[ProviderConfig]:
        try:
            row = row or s.get(SystemSetting, PROVIDERS_KEY)
        except ValueError:  # a hand-edited value that is not JSON (SQLite stores text)
            raise ConfigError(
                "The stored provider configuration (system_settings key 'llm_providers') is "
                "malformed: it is not valid JSON. Repair or delete that row; `gatehouse "
                "history` shows the last change made through GateHouse."
            ) from None
        return parse_document(row.value) if row else []

    def _stored_version(self) -> str:
        with self._session() as s:
            if self.engine.dialect.name == "postgresql":
                s.execute(text(f"SET LOCAL statement_timeout = {CHECK_STATEMENT_TIMEOUT_MS}"))
            updated = s.scalar(
                select(SystemSetting.updated_at).where(SystemSetting.key == PROVIDERS_KEY)
            )
        return updated.isoformat() if updated else "none"

    def _load_snapshot(self) -> Snapshot:
        with self._session() as s:
            stored = self._stored_configs(s)
            row = s.get(SystemSetting, PROVIDERS_KEY)
            version = row.updated_at.isoformat() if row else "none"
            secrets = {r.provider_name: r for r in s.scalars(select(ProviderSecret))}
        if not stored:
            env_config = self._env_provider()
            if env_config is not None:
                _check_env_provider(env_config, self._env)
            key = settings.get("CODEGEN_API_KEY", self._env)
            register_secret(key)
            problem = api_key_error(key) if key else None
            providers = (
                ()
                if env_config is None
                else (
                    ResolvedProvider(env_config, None, f"CODEGEN_API_KEY: {problem}")
                    if problem
                    else ResolvedProvider(env_config, key),
                )
            )
            return Snapshot(version=version, providers=providers)
        providers = tuple(self._resolve(c, secrets.get(c.name)) for c in stored)
        self._key_rows = {
            p.config.name: (row.created_at, row.key_prefix, row.last4)
            for p in providers
            if p.api_key is not None and (row := secrets.get(p.config.name)) is not None
        }
        return Snapshot(version=version, providers=providers)

    def _resolve(self, config: ProviderConfig, secret: ProviderSecret | None) -> ResolvedProvider:
        if secret is None:
            return ResolvedProvider(config, None)
        if self.box.can_decrypt(secret.key_fingerprint):
            try:
                api_key = self.box.open(secret.ciphertext)
                register_secret(api_key)  # scrubbed from every log line and audit row
                return ResolvedProvider(config, api_key)
            except SecretsError:
                pass
        kept = self._decrypted_before(config.name, secret)
        if kept is not None:
            # `secrets rotate` in another process re-encrypted the same key under a secrets
            # key this process lacks: keep serving the key it already decrypted.
            log.warning(
                "the stored API key of %s was re-encrypted with a secrets key this process "
                "does not have; serving the key decrypted earlier until restarted with the "
                "new GATEHOUSE_SECRETS_KEY",
                config.name,
            )
            return ResolvedProvider(config, kept)
        return ResolvedProvider(config, None, undecryptable_message([config.name]))

    def _decrypted_before(self, name: str, secret: ProviderSecret) -> str | None:
        """The key of the last snapshot if the stored secret is that same key (same row,
        prefix and last four characters: what a rotation keeps and a new key changes)."""
        previous = self._snapshot.get(name) if self._snapshot else None
        known = self._key_rows.get(name)
        if previous is None or previous.api_key is None or known is None:
            return None
        same = (
            known == (secret.created_at, secret.key_prefix, secret.last4)
            and previous.api_key.startswith(secret.key_prefix)
            and previous.api_key[-4:] == secret.last4
        )
        return previous.api_key if same else None

    def _key_info(self, secret: ProviderSecret | None) -> KeyInfo | None:
        if secret is None:
            return None
        return KeyInfo(
            prefix=secret.key_prefix,
            last4=secret.last4,
            fingerprint=secret.key_fingerprint,
            created_at=secret.created_at,
            rotated_at=secret.rotated_at,
            decryptable=self.box.can_decrypt(secret.key_fingerprint),
        )

    def _management_info(self, secret: ProviderSecret | None) -> KeyInfo | None:
        if secret is None or secret.management_ciphertext is None:
            return None
        fingerprint = secret.management_key_fingerprint or ""
        return KeyInfo(
            prefix=secret.management_key_prefix or "",
            last4=secret.management_last4 or "",
            fingerprint=fingerprint,
            created_at=secret.management_rotated_at,
            rotated_at=secret.management_rotated_at,
            decryptable=self.box.can_decrypt(fingerprint),
        )

    def _env_provider(self) -> ProviderConfig | None:
        env = self._env
        kind = settings.get("CODEGEN_PROVIDER", env)
        if not (kind or settings.get("CODEGEN_API_KEY", env)):
            return None
        return ProviderConfig(
            name=ENV_PROVIDER,
            type=kind
            if kind in PROVIDER_TYPES
            else "openrouter"
            if not kind
            else "openai-compatible",
            base_url=settings.get("CODEGEN_URL", env) or DEFAULT_BASE_URL,
            default_model=settings.get("CODEGEN_MODEL", env) or "anthropic/claude-sonnet-4",
            is_default=True,
            priority=1,
            source="environment",
        )

    def _env_key_info(self) -> KeyInfo | None:
        key = settings.get("CODEGEN_API_KEY", self._env)
        if not key:
            return None
        return KeyInfo(key_prefix(key), key[-4:], "environment", None, None, True)


class _ReadSession:
    """A read-only session that turns connection failures into DatabaseUnavailable."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.session = Session(engine)

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.session.close()
        if isinstance(exc, SQLAlchemyError) and not isinstance(exc, DatabaseUnavailable):
            raise unreachable(self.engine, exc) from None


def _check_api_key(api_key: str) -> None:
    problem = api_key_error(api_key)
    if problem:
        raise ValidationError({"api_key": problem})


def _check_env_provider(config: ProviderConfig, env: Mapping[str, str] | None) -> None:
    """The CODEGEN_* fallback provider obeys the same rules as a stored one."""
    try:
        config.validate()
        problem = host_error(config.base_url, env)
        if problem:
            raise ValidationError({"base_url": problem})
    except ValidationError as exc:
        raise ConfigError(
            f"The fallback provider `env` built from CODEGEN_URL / CODEGEN_MODEL is invalid: "
            f"{exc}. Fix those environment variables, or add a provider."
        ) from None


def _named(providers: list[ProviderConfig], name: str) -> ProviderConfig | None:
    return next((p for p in providers if p.name == name), None)


def _host_port(url: str) -> tuple[str, int | None]:
    parsed = urlparse(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return (parsed.hostname or "").lower().rstrip("."), parsed.port or default


def _moved_host(before_url: str, after_url: str) -> str | None:
    """The new host (with its port when not the scheme's default) if the URL moved hosts."""
    before, after = _host_port(before_url), _host_port(after_url)
    if before == after or (
        before[0] == after[0] and before[1] in (80, 443) and after[1] in (80, 443)
    ):
        return None  # same host (http -> https on the default ports is not a move)
    parsed = urlparse(after_url)
    return parsed.netloc.rsplit("@", 1)[-1].lower() if parsed.port else after[0]


def _confirms(confirm_host: str | None, moved_to: str) -> bool:
    if not confirm_host:
        return False
    given = confirm_host.strip().lower().rstrip(".")
    return given in (moved_to, _host_port(f"http://{moved_to}")[0])


def _order_audit(
    before: list[ProviderConfig], after: list[ProviderConfig]
) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"order": [p.name for p in _by_priority(before)]},
        {"order": [p.name for p in _by_priority(after)]},
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _by_priority(providers: list[ProviderConfig]) -> list[ProviderConfig]:
    return sorted(providers, key=lambda p: (p.priority, p.name))


def _find(providers: list[ProviderConfig], name: str) -> ProviderConfig:
    for p in providers:
        if p.name == name:
            return p
    raise NotFound(f"No provider named {name!r}; `gatehouse providers list` shows them")


def _next_enabled(providers: list[ProviderConfig], exclude: str) -> str | None:
    return next((p.name for p in _by_priority(providers) if p.enabled and p.name != exclude), None)


def _swap(providers: list[ProviderConfig], updated: ProviderConfig) -> list[ProviderConfig]:
    return [updated if p.name == updated.name else p for p in providers]


def _settle_default(
    providers: list[ProviderConfig], prefer: str | None = None
) -> list[ProviderConfig]:
    """Keep exactly one enabled default: `prefer` wins; with none, the first by priority."""
    enabled = [p for p in _by_priority(providers) if p.enabled]
    if not enabled:
        return [dataclasses.replace(p, is_default=False) for p in providers]
    current = [p.name for p in enabled if p.is_default]
    chosen = prefer or (current[0] if current else enabled[0].name)
    return [dataclasses.replace(p, is_default=p.name == chosen) for p in providers]
