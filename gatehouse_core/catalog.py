"""The model catalog: model ids, context lengths and per-token prices, and cost estimates.

Prices come from each provider's public `GET {base_url}/models` (`Catalog.refresh`, run by
`gatehouse models refresh`) into the `model_catalog` table. A model not in the table is answered
from the offline defaults in `data/default_catalog.json` (entries of OpenRouter's /models as of
2025-12-02), so cost estimates work before the first refresh. The gateway reads prices through
`Catalog.entry`: an in-memory lookup that checks the table for changes at most once per TTL.

How `/models` pricing is read (both the 2025 `{"data": [...]}` shape and the 2026 shape with
`total_count`/`links`, which omits zero-valued pricing keys):
- values are USD per token (per request for `request`), as strings or numbers;
- an absent `prompt`, `completion` or `request` key means 0 (the 2026 shape drops zeros);
- `"-1"` (`openrouter/auto`: the routed model's price), negative or unparseable values mean
  unknown/variable: None, and no cost estimate;
- only a positive `input_cache_read` counts; otherwise cached tokens are billed at the prompt
  price, which overestimates rather than underestimates;
- no `pricing` object at all (plain OpenAI-style /models) means every price is unknown.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from .db import transaction
from .errors import GatehouseError
from .hosts import host_error
from .providers import ProviderConfig, is_valid_model_id, model_id_error
from .schema import CatalogModel, utcnow

log = logging.getLogger("gatehouse.catalog")

DATA_FILE = Path(__file__).parent / "data" / "default_catalog.json"
DEFAULT_SOURCE = "default"
FREE_SUFFIX = ":free"
_ID_MAX, _NAME_MAX = 200, 300  # the model_catalog column widths
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")
_PRICE_COLUMNS = ("prompt_price", "completion_price", "cache_read_price", "request_price")


@dataclass(frozen=True)
class CatalogEntry:
    """One model. Prices are USD per token (`request_price` per request); None = unknown."""

    id: str
    name: str
    context_length: int | None
    prompt_price: float | None
    completion_price: float | None
    cache_read_price: float | None
    request_price: float | None
    source: str
    refreshed_at: datetime | None

    @property
    def prompt_per_million(self) -> float | None:
        """USD per million input tokens, for display."""
        return _per_million(self.prompt_price)

    @property
    def completion_per_million(self) -> float | None:
        """USD per million output tokens, for display."""
        return _per_million(self.completion_price)

    def to_json(self) -> dict[str, Any]:
        """The `gatehouse models --json` object."""
        data = dataclasses.asdict(self)
        data["refreshed_at"] = self.refreshed_at.isoformat() if self.refreshed_at else None
        return data

    @classmethod
    def from_row(cls, row: CatalogModel) -> CatalogEntry:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class RefreshResult:
    """How fetching one provider's /models went; `error` says why it failed."""

    provider: str
    ok: bool
    count: int = 0
    error: str | None = None
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _FetchFailed(GatehouseError):
    """A provider's /models could not be fetched or read."""


def _per_million(price: float | None) -> float | None:
    return None if price is None else round(price * 1_000_000, 6)


# ---- parsing /models ---------------------------------------------------------------------


def parse_models(
    payload: Mapping[str, Any] | Sequence[Any],
    source: str,
    *,
    refreshed_at: datetime | None = None,
) -> list[CatalogEntry]:
    """Catalog entries from a /models response (2025 or 2026 shape, or a bare list).

    Malformed entries are skipped (and logged); unknown fields are ignored. Raises ValueError
    only when the payload holds no model list at all.
    """
    items = _model_list(payload)
    when = refreshed_at or utcnow()
    entries: dict[str, CatalogEntry] = {}
    for item in items:
        entry = _parse_entry(item, source, when)
        if entry is None:
            log.debug("skipped a malformed /models entry from %s: %.200r", source, item)
        elif entry.id not in entries:  # the first of duplicated ids wins
            entries[entry.id] = entry
    return list(entries.values())


def _model_list(payload: Any) -> Sequence[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), list):
        return payload["data"]
    raise ValueError('expected {"data": [...]} or a list of models')


def _parse_entry(item: Any, source: str, when: datetime) -> CatalogEntry | None:
    if not isinstance(item, Mapping):
        return None
    model_id = item.get("id")
    if not isinstance(model_id, str) or not model_id.strip() or len(model_id) > _ID_MAX:
        return None
    name = item.get("name")
    name = name if isinstance(name, str) and name.strip() else model_id
    pricing = item.get("pricing")
    if pricing is not None and not isinstance(pricing, Mapping):
        return None
    prices = _prices(pricing)
    return CatalogEntry(
        id=model_id,
        name=name[:_NAME_MAX],
        context_length=_context_length(item),
        source=source,
        refreshed_at=when,
        **prices,
    )


def _prices(pricing: Mapping[str, Any] | None) -> dict[str, float | None]:
    if pricing is None:
        return dict.fromkeys(_PRICE_COLUMNS)
    cache_read = _price(pricing.get("input_cache_read", "0"))
    return {
        "prompt_price": _price(pricing.get("prompt", "0")),
        "completion_price": _price(pricing.get("completion", "0")),
        "cache_read_price": cache_read if cache_read else None,
        "request_price": _price(pricing.get("request", "0")),
    }


def _price(value: Any) -> float | None:
    """A per-token price, or None for "-1" (variable) and anything that is not a price."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        price = float(value)
    except ValueError:
        return None
    return price if math.isfinite(price) and price >= 0 else None


def _context_length(item: Mapping[str, Any]) -> int | None:
    top = item.get("top_provider")
    for value in (item.get("context_length"), top.get("context_length") if top else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


# ---- offline defaults --------------------------------------------------------------------


def _load_defaults() -> tuple[list[CatalogEntry], list[dict[str, str]]]:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    refreshed_at = datetime.fromisoformat(data["snapshot_date"])
    models = [
        CatalogEntry(**m, source=DEFAULT_SOURCE, refreshed_at=refreshed_at) for m in data["models"]
    ]
    return models, [dict(r) for r in data["recommended"]]


DEFAULT_CATALOG, RECOMMENDED_MODELS = _load_defaults()
"""Offline prices (see data/default_catalog.json) and "recommended models by use case"
(dicts with use_case, model_id, why) for the console's Models page."""


# ---- the catalog -------------------------------------------------------------------------


class Catalog:
    """Prices for cost estimates: the `model_catalog` table over the offline defaults.

    Cheap to share between threads. `entry` and `estimate_cost` are on the gateway's hot path:
    they read an in-memory dict and look at the table (one small query) at most once per
    `ttl` seconds, reloading only when it changed. A failing database never makes them raise.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        defaults: Sequence[CatalogEntry] | None = None,
    ):
        self.engine = engine
        self._ttl = ttl
        self._clock = clock
        self._defaults = {e.id: e for e in (DEFAULT_CATALOG if defaults is None else defaults)}
        self._entries = dict(self._defaults)
        self._stored_count = 0
        self._version: tuple[int, datetime | None] | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    # ---- hot path ------------------------------------------------------------------------

    def entry(self, model_id: str) -> CatalogEntry | None:
        """The model's entry; for an unknown `id:variant`, the entry of `id`; else None."""
        if self._clock() - self._checked_at >= self._ttl:
            self._check_for_changes()
        entries = self._entries
        found = entries.get(model_id)
        if found is None and ":" in model_id:
            found = entries.get(model_id.partition(":")[0])
        return found

    def estimate_cost(
        self, model_id: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """USD for a call from catalog prices; None when a needed price is unknown.

        `input_tokens` includes `cached_tokens` (as in OpenRouter's usage); those are billed at
        the cache-read price when the catalog has one. A `:free` model costs 0.
        """
        if model_id.endswith(FREE_SUFFIX):
            return 0.0
        e = self.entry(model_id)
        if e is None or e.prompt_price is None or e.completion_price is None:
            return None
        if e.request_price is None:
            return None
        cached = min(max(cached_tokens, 0), input_tokens)
        cache_price = e.prompt_price if e.cache_read_price is None else e.cache_read_price
        cost = (
            (input_tokens - cached) * e.prompt_price
            + cached * cache_price
            + output_tokens * e.completion_price
            + e.request_price
        )
        return round(cost, 12)

    def check_model(self, model_id: str) -> str | None:
        """A problem with `model_id` for a form to show, or None.

        The id error for a malformed id; a warning for a well-formed id that a refreshed
        catalog does not list (it may be a typo, or a model newer than the last refresh).
        """
        if not is_valid_model_id(model_id):
            return model_id_error(model_id)
        if model_id.startswith("~") or self.entry(model_id) is not None:
            return None  # `~` aliases are resolved by OpenRouter
        if self._stored_count == 0:
            return None  # only the offline defaults: too few to judge
        return (
            f"{model_id} is not in the model catalog ({self._stored_count} models); check the "
            "spelling, or run `gatehouse models refresh` if the model is new"
        )

    def _check_for_changes(self) -> None:
        # Non-blocking: while one thread asks the database, the others serve cached entries.
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = self._clock()
            if now - self._checked_at < self._ttl:
                return
            try:
                self._reload_if_changed()
            except Exception as exc:  # a price lookup must never fail a call
                log.warning(
                    "model catalog check failed (%s); using the cached prices",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                )
            self._checked_at = now
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> None:
        stmt = select(func.count(), func.max(CatalogModel.refreshed_at))
        with self.engine.connect() as conn:
            count, newest = conn.execute(stmt).one()
            version = (count, newest)
            if version == self._version:
                return
            rows = conn.execute(select(CatalogModel.__table__)).all()
        stored = {r.id: CatalogEntry(**r._mapping) for r in rows}
        self._entries = {**self._defaults, **stored}
        self._stored_count = count
        self._version = version

    # ---- reads for people ----------------------------------------------------------------

    def list(self, search: str | None = None) -> list[CatalogEntry]:
        """Models sorted by id, stored ones plus defaults not stored; `search` matches id or
        name, case-insensitive."""
        stmt = select(CatalogModel).order_by(CatalogModel.id)
        if search:
            pattern = "%" + _escape_like(search.lower()) + "%"
            stmt = stmt.where(
                or_(
                    func.lower(CatalogModel.id).like(pattern, escape="\\"),
                    func.lower(CatalogModel.name).like(pattern, escape="\\"),
                )
            )
        stored_defaults = select(CatalogModel.id).where(CatalogModel.id.in_(self._defaults))
        with transaction(self.engine) as s:  # DatabaseUnavailable when unreachable
            found = [CatalogEntry.from_row(r) for r in s.scalars(stmt)]
            shadowed = set(s.scalars(stored_defaults))
        needle = (search or "").lower()
        found += [
            e
            for e in self._defaults.values()
            if e.id not in shadowed and (needle in e.id.lower() or needle in e.name.lower())
        ]
        return sorted(found, key=lambda e: e.id)

    # ---- refresh -------------------------------------------------------------------------

    def refresh(
        self,
        providers: Sequence[ProviderConfig],
        *,
        timeout: float = 30.0,
        on_progress: Callable[[RefreshResult], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[RefreshResult]:
        """Fetch `/models` from each enabled provider and store it, one transaction each.

        Providers go by priority; a model listed by several keeps the first one as its
        source. Models whose source is none of `providers` (a deleted or disabled provider)
        and that no provider listed now are dropped. A provider that fails (unreachable,
        HTTP error, not JSON, a refused host, database error) is reported in its result and
        does not stop the others. Redirects are not followed.
        """
        results = []
        run_started = utcnow()
        enabled = sorted((p for p in providers if p.enabled), key=lambda p: (p.priority, p.name))
        with httpx2.Client(timeout=timeout, follow_redirects=False) as client:
            for config in enabled:
                refused = host_error(config.base_url, env, resolve=True)
                if refused:
                    result = RefreshResult(config.name, False, 0, refused, 0.0)
                else:
                    result = self._refresh_one(client, config, timeout, run_started)
                results.append(result)
                if on_progress is not None:
                    on_progress(result)
        if enabled:
            self._drop_orphans({p.name for p in enabled}, run_started)
        self._checked_at = float("-inf")  # this process sees the new prices at once
        return results

    def stored_count(self) -> int:
        """How many distinct models the catalog table holds (what a refresh reports)."""
        with transaction(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(CatalogModel)) or 0)

    def unknown_default_models(self, providers: Sequence[ProviderConfig]) -> dict[str, str]:
        """Provider name -> its default model, for defaults the refreshed catalog lacks.

        Empty before the first refresh (the offline defaults are too few to judge); `~`
        aliases are never flagged (OpenRouter resolves them).
        """
        if self.stored_count() == 0:
            return {}
        ids = {p.default_model for p in providers if not p.default_model.startswith("~")}
        with transaction(self.engine) as s:
            known = set(s.scalars(select(CatalogModel.id).where(CatalogModel.id.in_(ids))))
        unknown = {}
        for p in providers:
            model = p.default_model
            base = model.partition(":")[0]
            if model.startswith("~") or model in known or base in known:
                continue
            unknown[p.name] = model
        return unknown

    def _drop_orphans(self, sources: set[str], run_started: datetime) -> None:
        try:
            with transaction(self.engine) as s:
                s.execute(
                    delete(CatalogModel).where(
                        CatalogModel.source.not_in(sources),
                        CatalogModel.refreshed_at < run_started,
                    )
                )
        except (GatehouseError, SQLAlchemyError) as exc:
            log.warning("could not drop models of removed providers: %s", _first_line(exc))

    def _refresh_one(
        self,
        client: httpx2.Client,
        config: ProviderConfig,
        timeout: float,
        run_started: datetime,
    ) -> RefreshResult:
        started = time.perf_counter()
        try:
            payload = fetch_models(client, config, timeout)
        except _FetchFailed as exc:
            return RefreshResult(config.name, False, 0, str(exc), _ms_since(started))
        latency_ms = _ms_since(started)
        try:
            entries = parse_models(payload, config.name)
        except ValueError as exc:
            log.info(
                "%s: %s returned no model list: %s", config.name, models_url(config.base_url), exc
            )
            return RefreshResult(config.name, False, 0, no_api_answer(config.base_url), latency_ms)
        try:
            self._store(
                config.name, entries, complete=not _has_next_page(payload), run_started=run_started
            )
        except (GatehouseError, SQLAlchemyError) as exc:
            error = f"could not store the models of {config.name}: {_first_line(exc)}"
            return RefreshResult(config.name, False, 0, error, latency_ms)
        return RefreshResult(config.name, True, len(entries), None, latency_ms)

    def _store(
        self,
        source: str,
        entries: list[CatalogEntry],
        *,
        complete: bool,
        run_started: datetime | None = None,
    ) -> None:
        """Upsert the entries; drop this source's models the provider no longer lists.

        A model already stored in this run (by a provider earlier in priority) keeps that
        row and source.
        """
        if not entries:
            return  # an empty answer is more likely a glitch than a provider with no models
        now = utcnow()
        run_started = run_started or now
        rows = [dataclasses.asdict(e) | {"source": source, "refreshed_at": now} for e in entries]
        with transaction(self.engine) as s:
            insert = postgresql.insert if s.bind.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(CatalogModel)
            columns = [c.name for c in CatalogModel.__table__.columns if c.name != "id"]
            stmt = stmt.on_conflict_do_update(
                index_elements=[CatalogModel.id],
                set_={c: stmt.excluded[c] for c in columns},
                where=CatalogModel.refreshed_at < run_started,
            )
            s.execute(stmt, rows)
            if complete:
                s.execute(
                    delete(CatalogModel).where(
                        CatalogModel.source == source, CatalogModel.refreshed_at < run_started
                    )
                )
            else:
                log.warning("%s: /models has more pages; only the first one was stored", source)


# ---- HTTP ----------------------------------------------------------------------------------


def models_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/models"


def fetch_models(client: httpx2.Client, config: ProviderConfig, timeout: float) -> Any:
    """The decoded JSON of `GET {base_url}/models` (public: no API key is sent)."""
    url = models_url(config.base_url)
    headers = {"Accept": "application/json", **config.headers}
    # Every failure reads the same to the admin (refused, timeout, not HTTP, an HTTP error,
    # a redirect, not JSON): a refresh must not map which internal ports answer. The server
    # log keeps the reason.
    try:
        response = client.get(url, headers=headers, timeout=timeout)
    except httpx2.TimeoutException:
        log.info("%s: %s did not answer within %g s", config.name, url, timeout)
        raise _FetchFailed(no_api_answer(config.base_url)) from None
    except httpx2.HTTPError as exc:
        log.info("%s: could not reach %s: %s", config.name, url, _network_reason(exc))
        raise _FetchFailed(no_api_answer(config.base_url)) from None
    if response.status_code >= 300:
        log.info(
            "%s: %s answered HTTP %s: %s",
            config.name,
            url,
            response.status_code,
            _error_text(response),
        )
        raise _FetchFailed(no_api_answer(config.base_url))
    try:
        return response.json()
    except ValueError:
        log.info("%s: %s did not return JSON", config.name, url)
        raise _FetchFailed(no_api_answer(config.base_url)) from None


def no_api_answer(base_url: str) -> str:
    """The one text for a /models that could not be fetched or read, whatever the cause."""
    return (
        f"{models_url(base_url)} did not answer like an OpenAI-compatible API; check the "
        "provider's base URL (the server log has the details)"
    )


def _network_reason(exc: Exception) -> str:
    reason = _ERRNO_PREFIX.sub("", _first_line(exc)) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _error_text(response: httpx2.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    text = " ".join(str(message).split())
    return (text[:200] + "…") if len(text) > 200 else text or response.reason_phrase


def _has_next_page(payload: Any) -> bool:
    links = payload.get("links") if isinstance(payload, Mapping) else None
    return isinstance(links, Mapping) and bool(links.get("next"))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else ""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
