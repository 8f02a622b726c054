"""The model catalog: parsing /models, refreshing from a real HTTP server, prices and estimates."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from gatehouse_core.catalog import (
    DEFAULT_CATALOG,
    RECOMMENDED_MODELS,
    Catalog,
    CatalogEntry,
    parse_models,
)
from gatehouse_core.db import make_engine
from gatehouse_core.providers import ProviderConfig, model_id_error
from tests.fakes.openrouter import FakeOpenRouter

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "openrouter_models_2025-12.json"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def fixture_payload() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def as_2026_shape(payload: dict[str, Any]) -> dict[str, Any]:
    """The 2026 form of a 2025 payload: zero-valued prices dropped, new fields, total_count/links."""
    data = []
    for model in copy.deepcopy(payload["data"]):
        model["pricing"] = {k: v for k, v in model["pricing"].items() if float(v) != 0}
        model |= {"supported_voices": None, "knowledge_cutoff": None, "benchmarks": {}}
        model["links"] = {"details": f"/api/v1/models/{model['canonical_slug']}/endpoints"}
        data.append(model)
    return {"data": data, "total_count": len(data), "links": {"next": None}}


def by_id(entries: list[CatalogEntry]) -> dict[str, CatalogEntry]:
    return {e.id: e for e in entries}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class QueryCounter:
    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __len__(self) -> int:
        return len(self.statements)


# ---- parsing ---------------------------------------------------------------------------------


def test_parse_2025_fixture_reads_ids_context_and_per_token_prices():
    entries = by_id(parse_models(fixture_payload(), "openrouter", refreshed_at=WHEN))

    assert len(entries) == 335
    mini = entries["openai/gpt-4o-mini"]
    assert (mini.name, mini.context_length) == ("OpenAI: GPT-4o-mini", 128000)
    assert (mini.prompt_price, mini.completion_price) == (0.00000015, 0.0000006)
    assert (mini.cache_read_price, mini.request_price) == (0.000000075, 0.0)
    assert (mini.source, mini.refreshed_at) == ("openrouter", WHEN)
    assert entries["anthropic/claude-sonnet-4.5"].context_length == 1_000_000
    assert entries["anthropic/claude-sonnet-4.5"].prompt_per_million == 3.0
    assert entries["anthropic/claude-sonnet-4.5"].completion_per_million == 15.0


def test_parse_2026_shape_gives_the_same_entries_as_the_2025_shape():
    payload = fixture_payload()
    old = parse_models(payload, "openrouter", refreshed_at=WHEN)
    new = parse_models(as_2026_shape(payload), "openrouter", refreshed_at=WHEN)

    assert new == old


def test_parse_verbatim_2026_entry_with_new_fields():
    entry = {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "pricing": {
            "prompt": "0.00000015",
            "completion": "0.0000006",
            "input_cache_read": "0.000000075",
        },
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
        "supported_voices": None,
        "knowledge_cutoff": "2023-10-31",
        "links": {"details": "/api/v1/models/openai/gpt-4o-mini/endpoints"},
        "benchmarks": {"artificial_analysis": {"coding_index": 11.4}},
    }
    payload = {"data": [entry], "total_count": 414, "links": {"next": None}}

    [parsed] = parse_models(payload, "openrouter")

    assert (parsed.prompt_price, parsed.completion_price) == (0.00000015, 0.0000006)
    assert (parsed.cache_read_price, parsed.request_price) == (0.000000075, 0.0)


def test_minus_one_price_means_variable_and_leaves_prices_unknown():
    auto = by_id(parse_models(fixture_payload(), "openrouter"))["openrouter/auto"]

    assert auto.prompt_price is None and auto.completion_price is None
    assert auto.prompt_per_million is None


def test_absent_pricing_keys_mean_zero_in_the_2026_shape():
    payload = as_2026_shape(fixture_payload())
    free = by_id(parse_models(payload, "openrouter"))["meta-llama/llama-3.3-70b-instruct:free"]
    raw = next(m for m in payload["data"] if m["id"] == free.id)

    assert raw["pricing"] == {}
    assert (free.prompt_price, free.completion_price, free.request_price) == (0.0, 0.0, 0.0)


def test_malformed_entries_are_skipped_and_odd_values_are_unknown():
    payload = {
        "data": [
            "not an object",
            {"name": "no id"},
            {"id": 42, "pricing": {}},
            {"id": "x/" + "y" * 300, "pricing": {}},
            {"id": "acme/bad-pricing", "pricing": "free"},
            {
                "id": "acme/odd",
                "context_length": "big",
                "pricing": {"prompt": "abc", "completion": True},
            },
            {"id": "acme/ok", "pricing": {"prompt": "0.000001", "completion": 0.000002}},
            {"id": "acme/ok", "pricing": {"prompt": "9", "completion": "9"}},
        ]
    }

    entries = by_id(parse_models(payload, "p"))

    assert sorted(entries) == ["acme/odd", "acme/ok"]
    odd = entries["acme/odd"]
    assert (odd.name, odd.context_length, odd.prompt_price, odd.completion_price) == (
        "acme/odd",
        None,
        None,
        None,
    )
    assert entries["acme/ok"].prompt_price == 0.000001  # the first of a duplicated id wins
    assert entries["acme/ok"].completion_price == 0.000002


def test_openai_style_models_without_pricing_have_unknown_prices():
    payload = {"object": "list", "data": [{"id": "acme/m1", "object": "model", "owned_by": "x"}]}

    [entry] = parse_models(payload, "local")

    assert (entry.prompt_price, entry.completion_price, entry.cache_read_price) == (
        None,
        None,
        None,
    )


def test_a_bare_list_is_accepted_and_a_payload_without_models_is_refused():
    assert [e.id for e in parse_models([{"id": "a/b", "pricing": {}}], "p")] == ["a/b"]
    with pytest.raises(ValueError, match="data"):
        parse_models({"error": {"message": "nope"}}, "p")


# ---- offline defaults and recommendations --------------------------------------------------------


def test_offline_defaults_are_the_fixture_prices_with_source_default():
    real = by_id(parse_models(fixture_payload(), "default"))

    assert len(DEFAULT_CATALOG) >= 10
    for entry in DEFAULT_CATALOG:
        assert entry.source == "default"
        assert dataclasses.replace(entry, refreshed_at=None) == dataclasses.replace(
            real[entry.id], refreshed_at=None
        )


def test_recommended_models_name_models_in_the_defaults():
    defaults = {e.id for e in DEFAULT_CATALOG}

    assert len(RECOMMENDED_MODELS) >= 5
    for rec in RECOMMENDED_MODELS:
        assert set(rec) == {"use_case", "model_id", "why"}
        assert rec["model_id"] in defaults


# ---- estimates ---------------------------------------------------------------------------------


def test_estimate_cost_is_tokens_times_per_token_prices(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    # claude-sonnet-4: $3 / $15 per million tokens
    assert catalog.estimate_cost("anthropic/claude-sonnet-4", 1000, 2000) == pytest.approx(
        1000 * 0.000003 + 2000 * 0.000015, rel=1e-12
    )


def test_cached_tokens_are_billed_at_the_cache_read_price(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    cost = catalog.estimate_cost("openai/gpt-4o-mini", 1000, 100, cached_tokens=400)

    assert cost == pytest.approx(600 * 0.00000015 + 400 * 0.000000075 + 100 * 0.0000006)


def test_cached_tokens_without_a_cache_price_cost_the_prompt_price(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    cost = catalog.estimate_cost("deepseek/deepseek-chat", 1000, 0, cached_tokens=500)

    assert cost == pytest.approx(1000 * 0.0000003)


def test_request_price_is_added_once_per_call(sqlite_url: str):
    entry = CatalogEntry("acme/search", "Search", 1000, 0.000001, 0.000002, None, 0.005, "x", WHEN)
    catalog = Catalog(make_engine(sqlite_url), defaults=[entry])

    assert catalog.estimate_cost("acme/search", 10, 10) == pytest.approx(
        10 * 0.000001 + 10 * 0.000002 + 0.005
    )


def test_unknown_or_variable_price_models_have_no_estimate(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    assert catalog.estimate_cost("acme/unknown-model", 100, 100) is None
    assert catalog.estimate_cost("openrouter/auto", 100, 100) is None


def test_free_models_cost_nothing_even_when_not_in_the_catalog(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    assert catalog.estimate_cost("meta-llama/llama-3.3-70b-instruct:free", 5000, 5000) == 0.0
    assert catalog.estimate_cost("acme/never-heard-of:free", 5000, 5000) == 0.0


def test_an_unknown_variant_is_priced_as_its_base_model(sqlite_url: str):
    catalog = Catalog(make_engine(sqlite_url))

    nitro = catalog.estimate_cost("openai/gpt-4o-mini:nitro", 1000, 1000)

    assert nitro == catalog.estimate_cost("openai/gpt-4o-mini", 1000, 1000)
    assert nitro is not None


# ---- refresh -----------------------------------------------------------------------------------

# Refused, timed out, an HTTP error, not JSON: one text, so a refresh cannot map internal ports.
UNIFORM = "did not answer like an OpenAI-compatible API"


@pytest.mark.parametrize("shape", ["2025", "2026"])
def test_refresh_stores_the_fake_openrouters_models(
    engine: Engine, fake: FakeOpenRouter, shape: str
):
    fake.models_shape = shape
    catalog = Catalog(engine)
    provider = ProviderConfig("primary", base_url=fake.base_url, headers={"X-Title": "GateHouse"})

    [result] = catalog.refresh([provider])

    assert (result.provider, result.ok, result.count, result.error) == ("primary", True, 335, None)
    assert result.latency_ms is not None and result.latency_ms >= 0
    mini = catalog.entry("openai/gpt-4o-mini")
    assert mini is not None and mini.source == "primary"
    assert (mini.prompt_price, mini.cache_read_price) == (0.00000015, 0.000000075)
    assert catalog.entry("meta-llama/llama-3.3-70b-instruct:free").prompt_price == 0.0
    [request] = fake.requests
    assert request.path == "/api/v1/models"
    assert request.headers["x-title"] == "GateHouse"
    assert "authorization" not in request.headers


def test_refresh_reports_a_down_provider_and_still_stores_the_up_one(
    engine: Engine, fake: FakeOpenRouter
):
    port = closed_port()
    down = ProviderConfig("down", base_url=f"http://127.0.0.1:{port}/api/v1")
    up = ProviderConfig("up", base_url=fake.base_url)
    seen: list[str] = []

    results = Catalog(engine).refresh([down, up], on_progress=lambda r: seen.append(r.provider))

    assert seen == ["down", "up"]
    assert [(r.provider, r.ok, r.count) for r in results] == [("down", False, 0), ("up", True, 335)]
    assert results[0].error.startswith(f"http://127.0.0.1:{port}/api/v1/models {UNIFORM}")
    assert len(Catalog(engine).list()) == 335


def test_refresh_reports_an_http_error_with_the_status(engine: Engine, fake: FakeOpenRouter):
    wrong = ProviderConfig("wrong", base_url=fake.base_url + "/nowhere")

    [result] = Catalog(engine).refresh([wrong])

    assert not result.ok
    assert result.error.startswith(f"{fake.base_url}/nowhere/models {UNIFORM}")


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain static-file web server on loopback, for answers OpenRouter would not give."""
    root = tmp_path / "site"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_refresh_reports_a_page_that_is_not_json(sqlite_url: str, static_site):
    url, root = static_site
    (root / "models").write_text("<html>Welcome</html>")

    [result] = Catalog(make_engine(sqlite_url)).refresh([ProviderConfig("web", base_url=url)])

    assert not result.ok
    assert result.error.startswith(f"{url}/models {UNIFORM}")


def test_refresh_reports_json_without_a_model_list(sqlite_url: str, static_site):
    url, root = static_site
    (root / "models").write_text('{"hello": "world"}')

    [result] = Catalog(make_engine(sqlite_url)).refresh([ProviderConfig("web", base_url=url)])

    assert not result.ok
    assert result.error.startswith(f"{url}/models {UNIFORM}")


def test_refresh_gives_up_on_a_provider_that_does_not_answer(sqlite_url: str):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1"
        catalog = Catalog(make_engine(sqlite_url))
        [result] = catalog.refresh([ProviderConfig("mute", base_url=url)], timeout=0.2)

    assert not result.ok
    assert result.error.startswith(f"{url}/models {UNIFORM}")


def test_refresh_skips_disabled_providers(sqlite_url: str, fake: FakeOpenRouter):
    off = ProviderConfig("off", base_url=fake.base_url, enabled=False)

    assert Catalog(make_engine(sqlite_url)).refresh([off]) == []
    assert fake.requests == []


def test_refresh_replaces_old_prices_and_drops_models_no_longer_listed(
    engine: Engine, fake: FakeOpenRouter
):
    provider = ProviderConfig("primary", base_url=fake.base_url)
    Catalog(engine).refresh([provider])
    mini = next(m for m in fake.models if m["id"] == "openai/gpt-4o-mini")
    mini["pricing"] = mini["pricing"] | {"prompt": "0.000001"}
    fake.models = [m for m in fake.models if m["id"] != "qwen/qwen3-coder"]

    [result] = Catalog(engine).refresh([provider])

    catalog = Catalog(engine)
    assert result.count == 334
    assert catalog.entry("openai/gpt-4o-mini").prompt_price == 0.000001
    assert catalog.entry("qwen/qwen3-coder").source == "default"  # back to the offline price
    assert len([e for e in catalog.list() if e.source == "primary"]) == 334


def test_a_failed_refresh_keeps_the_stored_models(engine: Engine, fake: FakeOpenRouter):
    Catalog(engine).refresh([ProviderConfig("primary", base_url=fake.base_url)])
    gone = ProviderConfig("primary", base_url=f"http://127.0.0.1:{closed_port()}/api/v1")

    [result] = Catalog(engine).refresh([gone])

    assert not result.ok
    assert Catalog(engine).entry("openai/gpt-4o-mini").source == "primary"


# ---- entry(): the hot path ---------------------------------------------------------------------


def test_entry_uses_the_offline_defaults_before_any_refresh(sqlite_url: str):
    entry = Catalog(make_engine(sqlite_url)).entry("anthropic/claude-sonnet-4")

    assert entry is not None
    assert (entry.source, entry.prompt_price, entry.completion_price) == ("default", 3e-06, 1.5e-05)


def test_entry_makes_no_database_query_within_the_ttl(sqlite_url: str):
    engine = make_engine(sqlite_url)
    clock = Clock()
    catalog = Catalog(engine, ttl=60, clock=clock)
    queries = QueryCounter(engine)
    catalog.entry("openai/gpt-4o-mini")
    assert len(queries) >= 1  # the first call looks at the table
    before = len(queries)

    for _ in range(100):
        catalog.entry("openai/gpt-4o-mini")
        catalog.estimate_cost("openai/gpt-4o-mini", 10, 10)
    clock.now += 59
    catalog.entry("openai/gpt-4o-mini")

    assert len(queries) == before
    clock.now += 2
    catalog.entry("openai/gpt-4o-mini")
    assert len(queries) == before + 1  # one cheap change check; nothing changed, no reload


def test_entry_sees_a_refresh_by_another_process_after_the_ttl(
    engine: Engine, fake: FakeOpenRouter
):
    clock = Clock()
    reader = Catalog(engine, ttl=60, clock=clock)
    assert reader.entry("openai/gpt-4o-mini").source == "default"

    Catalog(engine).refresh([ProviderConfig("primary", base_url=fake.base_url)])

    assert reader.entry("openai/gpt-4o-mini").source == "default"  # within the TTL
    clock.now += 60
    assert reader.entry("openai/gpt-4o-mini").source == "primary"
    assert reader.entry("nvidia/llama-3.3-nemotron-super-49b-v1.5") is not None


def test_entry_keeps_the_last_prices_when_the_database_fails(
    sqlite_url: str, fake: FakeOpenRouter, caplog: pytest.LogCaptureFixture
):
    engine = make_engine(sqlite_url)
    clock = Clock()
    catalog = Catalog(engine, ttl=60, clock=clock)
    catalog.refresh([ProviderConfig("primary", base_url=fake.base_url)])
    assert catalog.entry("openai/gpt-4o-mini").source == "primary"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE model_catalog"))
    clock.now += 61

    with caplog.at_level(logging.WARNING, logger="gatehouse.catalog"):
        entry = catalog.entry("openai/gpt-4o-mini")

    assert entry is not None and entry.source == "primary"
    assert "using the cached prices" in caplog.text


def test_entry_serves_the_defaults_when_the_database_is_unreachable(
    caplog: pytest.LogCaptureFixture,
):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/gatehouse"
    catalog = Catalog(make_engine(url, migrate=False))

    with caplog.at_level(logging.WARNING, logger="gatehouse.catalog"):
        cost = catalog.estimate_cost("anthropic/claude-sonnet-4", 1000, 0)

    assert cost == pytest.approx(0.003)
    assert "model catalog check failed" in caplog.text


# ---- list and check_model ------------------------------------------------------------------------


def test_list_before_refresh_shows_the_offline_defaults(engine: Engine):
    listed = Catalog(engine).list()

    assert [e.id for e in listed] == sorted(e.id for e in DEFAULT_CATALOG)


def test_list_search_matches_id_or_name_case_insensitively_in_sql(
    engine: Engine, fake: FakeOpenRouter
):
    catalog = Catalog(engine)
    catalog.refresh([ProviderConfig("primary", base_url=fake.base_url)])
    queries = QueryCounter(engine)

    by_name = catalog.list("claude sonnet")
    by_id_text = catalog.list("GPT-4O-MINI")

    assert [e.id for e in by_name] == ["anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4.5"]
    assert [e.id for e in by_id_text] == sorted(
        m["id"] for m in fake.models if "gpt-4o-mini" in m["id"]
    )
    assert all(e.source == "primary" for e in by_id_text)
    assert any(" LIKE " in s.upper() for s in queries.statements)


def test_list_search_treats_like_wildcards_literally(engine: Engine, fake: FakeOpenRouter):
    catalog = Catalog(engine)
    catalog.refresh([ProviderConfig("primary", base_url=fake.base_url)])

    assert catalog.list("%") == []
    assert catalog.list("gpt_4o") == []


def test_check_model_reports_malformed_ids_and_ids_missing_from_a_refreshed_catalog(
    sqlite_url: str, fake: FakeOpenRouter
):
    catalog = Catalog(make_engine(sqlite_url))
    assert catalog.check_model("gpt 4") == model_id_error("gpt 4")
    assert catalog.check_model("acme/brand-new") is None  # only defaults: no judgement

    catalog.refresh([ProviderConfig("primary", base_url=fake.base_url)])

    warning = catalog.check_model("openai/gpt-4o-mni")
    assert warning is not None and "not in the model catalog" in warning
    assert catalog.check_model("openai/gpt-4o-mini") is None
    assert catalog.check_model("openai/gpt-4o-mini:nitro") is None
    assert catalog.check_model("~anthropic/claude-sonnet-latest") is None


def test_refresh_of_a_paginated_answer_stores_the_page_and_keeps_older_rows(
    sqlite_url: str, static_site
):
    url, root = static_site
    payload = as_2026_shape(fixture_payload())
    (root / "models").write_text(json.dumps({"data": payload["data"][:1]}))
    catalog = Catalog(make_engine(sqlite_url))
    catalog.refresh([ProviderConfig("web", base_url=url)])
    first_id = payload["data"][0]["id"]
    payload["data"] = payload["data"][1:]
    payload["links"] = {"next": "/api/v1/models?offset=334"}
    (root / "models").write_text(json.dumps(payload))

    [result] = catalog.refresh([ProviderConfig("web", base_url=url)])

    assert (result.ok, result.count) == (True, 334)
    assert catalog.entry(first_id).source == "web"  # not dropped: the list was incomplete


def test_refresh_reports_a_database_failure_per_provider(sqlite_url: str, fake: FakeOpenRouter):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE model_catalog"))

    [result] = Catalog(engine).refresh([ProviderConfig("primary", base_url=fake.base_url)])

    assert not result.ok
    assert result.error.startswith("could not store the models of primary: ")
    assert "model_catalog" in result.error


# ---- refresh: distinct counts, sources, host rules, redirects -----------------------------


def test_models_listed_by_two_providers_are_counted_once_and_keep_the_first_source(
    sqlite_url: str, fake: FakeOpenRouter
):
    engine = make_engine(sqlite_url)
    catalog = Catalog(engine)
    second = ProviderConfig("second", base_url=fake.base_url, priority=2)
    first = ProviderConfig("first", base_url=fake.base_url, priority=1)
    results = catalog.refresh([second, first])
    assert [r.provider for r in results] == ["first", "second"]  # by priority
    assert sum(r.count for r in results) == 2 * 335
    assert catalog.stored_count() == 335
    assert {e.source for e in catalog.list() if e.source != "default"} == {"first"}


def test_models_of_a_removed_provider_take_a_current_source(sqlite_url: str, fake: FakeOpenRouter):
    engine = make_engine(sqlite_url)
    catalog = Catalog(engine)
    catalog.refresh([ProviderConfig("old", base_url=fake.base_url)])
    catalog.refresh([ProviderConfig("new", base_url=fake.base_url)])
    assert {e.source for e in catalog.list() if e.source != "default"} == {"new"}
    assert catalog.stored_count() == 335


def test_refresh_does_not_follow_a_redirect(sqlite_url: str, fake: FakeOpenRouter):
    with FakeOpenRouter() as elsewhere:
        fake.models_redirect_to = elsewhere.base_url + "/models"
        [result] = Catalog(make_engine(sqlite_url)).refresh(
            [ProviderConfig("p", base_url=fake.base_url)]
        )
        assert not result.ok and UNIFORM in result.error
        assert elsewhere.requests == []


def test_refresh_never_contacts_a_refused_host(sqlite_url: str, fake: FakeOpenRouter):
    catalog = Catalog(make_engine(sqlite_url))
    meta = ProviderConfig("meta", base_url="http://169.254.169.254/latest")
    local = ProviderConfig("local", base_url=fake.base_url, priority=2)
    results = catalog.refresh([meta, local], env={"GATEHOUSE_PROVIDER_HOSTS": "x.example"})
    assert [r.ok for r in results] == [False, False]
    assert all("not an allowed provider host" in r.error for r in results)
    assert fake.requests == []


def test_unknown_default_models_are_flagged_after_a_refresh(sqlite_url: str, fake: FakeOpenRouter):
    catalog = Catalog(make_engine(sqlite_url))
    good = ProviderConfig("good", base_url=fake.base_url, default_model="openai/gpt-4o-mini")
    typo = ProviderConfig("typo", base_url=fake.base_url, default_model="openai/gpt-4o-mimi")
    alias = ProviderConfig("alias", base_url=fake.base_url, default_model="~openai/gpt-latest")
    assert catalog.unknown_default_models([good, typo, alias]) == {}  # nothing refreshed yet
    catalog.refresh([good])
    assert catalog.unknown_default_models([good, typo, alias]) == {"typo": "openai/gpt-4o-mimi"}
