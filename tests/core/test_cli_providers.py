"""`gatehouse providers …` through the real CLI entry point (in-process and as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gatehouse_core.cli import main
from tests.core.cli import ok, run

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdefa1b2"
OTHER_KEY = "sk-or-v1-fedcba9876543210fedcba9876543210fedcba9876543210c3d4"
GATEHOUSE = Path(sys.executable).with_name("gatehouse")
LIST_KEYS = {
    "name",
    "type",
    "is_default",
    "priority",
    "enabled",
    "config",
    "source",
    "api_key",
    "key_status",
    "key_rotated_at",
    "management_key",
}


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LOGNAME", "alice")  # getpass.getuser() reads it first
    return "alice"


def fails(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> str:
    """Run a command that must fail with exactly one `error: …` line; return that line."""
    code, out, err = run(capsys, *argv, stdin=stdin)
    assert code == 1, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    return err


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return json.loads(ok(capsys, "providers", "list", "--json"))


def add(capsys: pytest.CaptureFixture[str], name: str, *extra: str, key: str | None = KEY) -> str:
    argv = ["providers", "add", name, "--base-url", "https://openrouter.ai/api/v1"]
    argv += ["--model", "anthropic/claude-sonnet-4", *extra]
    if key is None:
        return ok(capsys, *argv)
    return ok(capsys, *argv, "--api-key-stdin", stdin=key + "\n")


# ---- list, add, show -----------------------------------------------------------------------


def test_list_without_providers_says_how_to_add_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert "gatehouse providers add NAME" in ok(capsys, "providers", "list")
    assert listed(capsys) == []


def test_add_with_every_option_stores_them(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "primary")
    out = add(
        capsys,
        "backup",
        "--type",
        "openai-compatible",
        "--priority",
        "5",
        "--default",
        "--rpm",
        "400",
        "--tpm",
        "4000000",
        "--concurrency",
        "50",
        "--header",
        "X-Title=GateHouse",
        "--header",
        "HTTP-Referer=https://gatehouse.example",
    )
    assert "Added provider backup with an encrypted API key" in out
    shown = json.loads(ok(capsys, "providers", "show", "backup", "--json"))
    assert shown["type"] == "openai-compatible"
    assert (shown["priority"], shown["is_default"], shown["enabled"]) == (5, True, True)
    assert shown["config"] == {
        "base_url": "https://openrouter.ai/api/v1",
        "default_model": "anthropic/claude-sonnet-4",
        "rate_limit": {
            "requests_per_minute": 400,
            "tokens_per_minute": 4000000,
            "concurrent_requests": 50,
        },
        "headers": {"X-Title": "GateHouse", "HTTP-Referer": "https://gatehouse.example"},
    }
    assert shown["api_key"] == "sk-or-…a1b2" and shown["key_status"] == "ok"
    primary = json.loads(ok(capsys, "providers", "show", "primary", "--json"))
    assert primary["is_default"] is False  # the new default took over


def test_add_takes_the_next_priority_and_can_be_disabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    add(capsys, "a")
    add(capsys, "b", "--disabled")
    by_name = {p["name"]: p for p in listed(capsys)}
    assert (by_name["a"]["priority"], by_name["b"]["priority"]) == (1, 2)
    assert by_name["b"]["enabled"] is False and by_name["a"]["is_default"] is True


def test_add_reads_the_key_from_an_environment_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_KEY", KEY)
    argv = ["providers", "add", "a", "--base-url", "https://openrouter.ai/api/v1"]
    ok(capsys, *argv, "--model", "openai/gpt-4o-mini", "--api-key-env", "OPENROUTER_KEY")
    assert listed(capsys)[0]["api_key"] == "sk-or-…a1b2"


def test_add_without_a_key_says_how_to_set_one(capsys: pytest.CaptureFixture[str]) -> None:
    out = add(capsys, "a", key=None)
    assert "gatehouse providers set-key a --api-key-stdin" in out
    [provider] = listed(capsys)
    assert (provider["api_key"], provider["key_status"]) == (None, "missing")


def test_list_json_is_a_list_of_objects_with_the_documented_keys(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    add(capsys, "a")
    add(capsys, "b", key=None)
    providers = listed(capsys)
    assert [p["name"] for p in providers] == ["a", "b"]
    assert all(set(p) == LIST_KEYS for p in providers)
    assert providers[0]["source"] == "database"
    assert providers[0]["key_rotated_at"] and providers[1]["key_rotated_at"] is None


def test_list_table_shows_masked_key_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a")
    out = ok(capsys, "providers", "list")
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["NAME", "TYPE"] and "SOURCE" in header
    assert "sk-or-…a1b2" in row and row.split()[-1] == "database"


def test_show_prints_every_field_with_the_key_masked(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a", "--rpm", "60", "--header", "X-Title=GateHouse")
    out = ok(capsys, "providers", "show", "a")
    assert "sk-or-…a1b2" in out and "X-Title=GateHouse" in out
    assert "requests/min   60" in out and "tokens/min     unlimited" in out


# ---- update, enable, disable, remove, set-key ----------------------------------------------


def test_update_changes_only_the_options_given(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a", "--rpm", "60", "--tpm", "1000", "--header", "X-Title=GateHouse")
    ok(capsys, "providers", "update", "a", "--model", "openai/gpt-4o", "--rpm", "none")
    ok(capsys, "providers", "update", "a", "--header", "X-Title=", "--header", "X-Other=1")
    [provider] = listed(capsys)
    assert provider["config"]["default_model"] == "openai/gpt-4o"
    assert provider["config"]["rate_limit"] == {"tokens_per_minute": 1000}
    assert provider["config"]["headers"] == {"X-Other": "1"}
    assert provider["config"]["base_url"] == "https://openrouter.ai/api/v1"
    assert provider["api_key"] == "sk-or-…a1b2"


def test_update_default_and_disabled_flags_move_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    add(capsys, "a")
    add(capsys, "b")
    ok(capsys, "providers", "update", "b", "--default")
    assert [p["name"] for p in listed(capsys) if p["is_default"]] == ["b"]
    ok(capsys, "providers", "update", "b", "--disabled")
    assert [p["name"] for p in listed(capsys) if p["is_default"]] == ["a"]
    ok(capsys, "providers", "update", "b", "--enabled")
    assert all(p["enabled"] for p in listed(capsys))


def test_update_can_replace_the_key_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a")
    ok(capsys, "providers", "update", "a", "--api-key-stdin", stdin=OTHER_KEY)
    assert listed(capsys)[0]["api_key"] == "sk-or-…c3d4"


def test_disable_enable_and_remove(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a")
    add(capsys, "b")
    assert "Disabled provider a" in ok(capsys, "providers", "disable", "a")
    assert [(p["name"], p["enabled"], p["is_default"]) for p in listed(capsys)] == [
        ("a", False, False),
        ("b", True, True),
    ]
    assert "Enabled provider a" in ok(capsys, "providers", "enable", "a")
    assert "Removed provider b" in ok(capsys, "providers", "remove", "b")
    assert [(p["name"], p["is_default"]) for p in listed(capsys)] == [("a", True)]


def test_set_key_from_stdin_and_from_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add(capsys, "a", key=None)
    out = ok(capsys, "providers", "set-key", "a", "--api-key-stdin", stdin=f"  {KEY}  \n")
    assert "sk-or-…a1b2" in out and KEY not in out
    monkeypatch.setenv("NEW_KEY", OTHER_KEY)
    ok(capsys, "providers", "set-key", "a", "--api-key-env", "NEW_KEY")
    assert listed(capsys)[0]["api_key"] == "sk-or-…c3d4"


def test_set_key_needs_a_key_source(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a", key=None)
    assert "one of the arguments --api-key-env --api-key-stdin is required" in usage_error(
        capsys, "providers", "set-key", "a"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["providers", "set-key", "a", "--api-key", KEY],
        ["providers", "set-key", "a", f"--api-key={KEY}"],
        ["providers", "update", "a", "--api-key", KEY],
        [
            "providers",
            "add",
            "b",
            "--base-url",
            "https://x.example/v1",
            "--model",
            "a/b",
            "--api-key",
            KEY,
        ],
    ],
)
def test_api_key_option_is_refused_without_echoing_the_key(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    add(capsys, "a", key=None)
    err = usage_error(capsys, *argv)
    assert "never accepted as an argument" in err and "--api-key-stdin" in err
    assert KEY not in err
    assert [(p["name"], p["api_key"]) for p in listed(capsys)] == [("a", None)]


@pytest.mark.parametrize(
    "argv",
    [
        ["providers", "set-key", "a", KEY],
        ["providers", "add", "b", "--base-url", "https://x.example/v1", "--model", "a/b", KEY],
    ],
)
def test_an_api_key_is_never_accepted_as_a_positional_argument(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    add(capsys, "a", key=None)
    usage_error(capsys, *argv)
    assert [(p["name"], p["api_key"]) for p in listed(capsys)] == [("a", None)]


# ---- bad input: one line, exit 1, nothing half-saved ---------------------------------------

ADD = ["providers", "add", "new", "--base-url", "https://openrouter.ai/api/v1", "--model"]


@pytest.mark.parametrize(
    ("argv", "stdin", "expected"),
    [
        (["providers", "add", "Bad_Name", *ADD[3:], "a/b"], None, "is not a valid name"),
        (["providers", "add", "new", "--base-url", "ftp://x", "--model", "a/b"], None, "http(s)"),
        ([*ADD, "claude"], None, "provider/model-name"),
        ([*ADD, "a/b", "--priority", "0"], None, "priority: must be a whole number of at least 1"),
        ([*ADD, "a/b", "--rpm", "0"], None, "requests_per_minute: must be a positive whole"),
        ([*ADD, "a/b", "--concurrency", "-2"], None, "concurrent_requests"),
        ([*ADD, "a/b", "--header", "Authorization=Bearer abc"], None, "would carry a credential"),
        ([*ADD, "a/b", "--default", "--disabled"], None, "disabled provider cannot be the default"),
        (["providers", "add", "a", *ADD[3:], "a/b"], None, "'a' already exists"),
        ([*ADD, "a/b", "--api-key-env", "NOT_SET_ANYWHERE"], None, "NOT_SET_ANYWHERE is not set"),
        ([*ADD, "a/b", "--api-key-stdin"], "\n", "no API key on standard input"),
        ([*ADD, "a/b", "--api-key-stdin"], "sk-1234\n", "too short"),
        (["providers", "update", "a", "--model", "nope"], None, "provider/model-name"),
        (["providers", "update", "a"], None, "nothing to update"),
        (["providers", "update", "ghost", "--priority", "2"], None, "No provider named 'ghost'"),
        (["providers", "remove", "ghost"], None, "No provider named 'ghost'"),
        (["providers", "enable", "ghost"], None, "No provider named 'ghost'"),
        (["providers", "disable", "ghost"], None, "No provider named 'ghost'"),
        (["providers", "show", "ghost"], None, "No provider named 'ghost'"),
        (["providers", "set-key", "ghost", "--api-key-stdin"], KEY, "No provider named 'ghost'"),
        (["providers", "set-key", "a", "--api-key-stdin"], "has spaces in it\n", "spaces"),
    ],
)
def test_bad_input_is_one_clear_line_and_nothing_is_saved(
    capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str | None, expected: str
) -> None:
    add(capsys, "a")
    before = (listed(capsys), ok(capsys, "history", "--json"))
    line = fails(capsys, *argv, stdin=stdin)
    assert expected in line
    assert "Bearer abc" not in line
    assert (listed(capsys), ok(capsys, "history", "--json")) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["providers", "add", "a", "--model", "a/b"],  # --base-url missing
        [*ADD, "a/b", "--priority", "first"],
        [*ADD, "a/b", "--rpm", "lots"],
        [*ADD, "a/b", "--header", "no-equals-sign"],
        [*ADD, "a/b", "--type", "anthropic"],
        [*ADD, "a/b", "--api-key-env", "X", "--api-key-stdin"],
        ["providers", "frobnicate"],
        ["providers"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "usage: gatehouse" in usage_error(capsys, *argv)


# ---- environment fallback ------------------------------------------------------------------


def test_env_provider_is_listed_read_only_until_a_database_provider_exists(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEGEN_PROVIDER", "openrouter")
    monkeypatch.setenv("CODEGEN_API_KEY", KEY)
    [env] = listed(capsys)
    assert (env["name"], env["source"], env["api_key"]) == ("env", "environment", "sk-or-…a1b2")
    assert ok(capsys, "providers", "list").strip().splitlines()[1].split()[-1] == "environment"
    assert "cannot be changed here" in fails(capsys, "providers", "disable", "env")
    add(capsys, "primary")
    assert [(p["name"], p["source"]) for p in listed(capsys)] == [("primary", "database")]


# ---- environment problems ------------------------------------------------------------------


def test_database_down_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", "postgresql+psycopg://gate:pw1234@127.0.0.1:1/gh")
    line = fails(capsys, "providers", "list")
    assert "Cannot reach the database" in line and "127.0.0.1:1" in line
    assert "pw1234" not in line


def test_malformed_database_url_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", "not a url")
    assert "is not a database URL" in fails(capsys, "providers", "list", "--json")


def test_invalid_secrets_key_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", os.environ["GATEHOUSE_SECRETS_KEY"] + ",oops")
    line = fails(capsys, "providers", "list")
    assert "GATEHOUSE_SECRETS_KEY entry 2 is not a valid Fernet key" in line


def test_invalid_config_ttl_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_CONFIG_TTL", "soon")
    line = fails(capsys, "providers", "list")
    assert "GATEHOUSE_CONFIG_TTL='soon' is not a number" in line and "unexpected" not in line


def test_dev_key_warning_is_printed_when_no_secrets_key_is_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GATEHOUSE_SECRETS_KEY")
    add(capsys, "a")
    code, out, err = run(capsys, "providers", "list")
    assert code == 0 and "sk-or-…a1b2" in out
    assert "warning: GATEHOUSE_SECRETS_KEY is not set" in err
    assert (tmp_path / ".gatehouse" / "secrets.key").exists()


# ---- the installed console script ----------------------------------------------------------


def test_console_script_adds_and_lists_providers(tmp_path: Path) -> None:
    env = {**os.environ, "LOGNAME": "bob"}
    argv = [str(GATEHOUSE), "providers", "add", "primary", "--base-url"]
    argv += ["https://openrouter.ai/api/v1", "--model", "anthropic/claude-sonnet-4"]
    argv += ["--api-key-stdin"]
    added = subprocess.run(argv, input=KEY, env=env, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "Added provider primary" in added.stdout

    shown = subprocess.run(
        [str(GATEHOUSE), "providers", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert [(p["name"], p["api_key"]) for p in json.loads(shown.stdout)] == [
        ("primary", "sk-or-…a1b2")
    ]
    assert KEY not in added.stdout + added.stderr + shown.stdout + shown.stderr


def test_console_script_error_is_one_line_without_traceback() -> None:
    done = subprocess.run(
        [str(GATEHOUSE), "providers", "remove", "ghost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: No provider named 'ghost'; `gatehouse providers list` shows them"
    ]


# ---- header edits, host moves, pasted keys ----------------------------------------------


def _add_primary(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMARY_KEY", KEY)
    ok(
        capsys,
        "providers",
        "add",
        "primary",
        "--base-url",
        "https://openrouter.ai/api/v1",
        "--model",
        "openai/gpt-4o-mini",
        "--api-key-env",
        "PRIMARY_KEY",
        "--header",
        "X-Title=GateHouse",
        "--header",
        "HTTP-Referer=https://x.example",
    )


def test_header_edit_changes_only_the_named_headers(capsys, monkeypatch) -> None:
    _add_primary(capsys, monkeypatch)
    ok(
        capsys,
        "providers",
        "update",
        "primary",
        "--header",
        "X-Title=New",
        "--header",
        "HTTP-Referer=",
    )
    [shown] = listed(capsys)
    assert shown["config"]["headers"] == {"X-Title": "New"}


def test_moving_the_base_url_to_another_host_needs_a_confirmation(capsys, monkeypatch) -> None:
    _add_primary(capsys, monkeypatch)
    line = fails(capsys, "providers", "update", "primary", "--base-url", "https://evil.example/v1")
    assert "--confirm-new-host evil.example" in line
    assert listed(capsys)[0]["config"]["base_url"] == "https://openrouter.ai/api/v1"
    ok(
        capsys,
        "providers",
        "update",
        "primary",
        "--base-url",
        "https://evil.example/v1",
        "--confirm-new-host",
        "evil.example",
    )
    assert listed(capsys)[0]["config"]["base_url"] == "https://evil.example/v1"


@pytest.mark.parametrize("action", ["show", "remove", "enable", "disable", "test"])
def test_a_key_pasted_as_the_name_is_refused_without_echoing_it(
    capsys, monkeypatch, action: str
) -> None:
    _add_primary(capsys, monkeypatch)
    for pasted in (KEY, "gsk_" + "Q" * 40):
        line = fails(capsys, "providers", action, pasted)
        assert "looks like an API key" in line
        assert pasted not in line and pasted[-8:] not in line


def test_a_stored_key_of_any_shape_is_recognised(capsys, monkeypatch) -> None:
    odd_key = "Zq7x9KpLmN3vB8wR2tY6uI0oP4aS5dF1"
    monkeypatch.setenv("ODD_KEY", odd_key)
    ok(
        capsys,
        "providers",
        "add",
        "odd",
        "--base-url",
        "https://openrouter.ai/api/v1",
        "--model",
        "openai/gpt-4o-mini",
        "--api-key-env",
        "ODD_KEY",
    )
    line = fails(capsys, "providers", "show", "nosuch")
    assert "No provider named" in line  # an ordinary unknown name is still answered plainly
    code, out, err = run(capsys, "providers", "show", odd_key)
    assert code == 1 and odd_key not in out + err and "looks like an API key" in err


def test_list_flags_a_default_model_missing_from_the_refreshed_catalog(
    capsys, monkeypatch, fake_openrouter
) -> None:
    ok(
        capsys,
        "providers",
        "add",
        "good",
        "--base-url",
        fake_openrouter.base_url,
        "--model",
        "openai/gpt-4o-mini",
    )
    ok(
        capsys,
        "providers",
        "add",
        "typo",
        "--base-url",
        fake_openrouter.base_url,
        "--model",
        "openai/gpt-4o-mimi",
    )
    assert "not in catalog" not in ok(capsys, "providers", "list")
    run(capsys, "models", "refresh")
    out = ok(capsys, "providers", "list")
    assert "openai/gpt-4o-mimi (not in catalog)" in out
    assert "openai/gpt-4o-mini (not in catalog)" not in out
