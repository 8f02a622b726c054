"""Settings are declared once; the README documents each; env wins over the declared default."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse_core import settings
from gatehouse_core.errors import ConfigError
from gatehouse_core.settings import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]
ISSUE_SETTINGS = (
    "GATEHOUSE_DATABASE_URL",
    "GATEHOUSE_SECRETS_KEY",
    "GATEHOUSE_REDIS_URL",
    "GATEHOUSE_LOG_LEVEL",
    "CODEGEN_PROVIDER",
    "CODEGEN_API_KEY",
    "CODEGEN_URL",
    "CODEGEN_MODEL",
)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented_in_readme(setting: settings.Setting) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{setting.name}`" in readme, f"README.md does not document {setting.name}"


def test_settings_are_declared_once_each_with_help() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.help.strip() for s in SETTINGS)


def test_the_issue_settings_are_all_declared() -> None:
    assert set(ISSUE_SETTINGS) <= {s.name for s in SETTINGS}


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("GATEHOUSE_DATABASE_URL", "sqlite:///gatehouse.db"),
        ("GATEHOUSE_LOG_LEVEL", "info"),
        ("GATEHOUSE_HOME", ".gatehouse"),
        ("CODEGEN_URL", "https://openrouter.ai/api/v1"),
        ("CODEGEN_MODEL", "anthropic/claude-sonnet-4"),
        ("GATEHOUSE_SECRETS_KEY", None),
        ("GATEHOUSE_REDIS_URL", None),
    ],
)
def test_unset_setting_resolves_to_its_declared_default(name: str, default: str | None) -> None:
    assert settings.get(name, env={}) == default


def test_blank_value_counts_as_unset() -> None:
    assert settings.get("GATEHOUSE_LOG_LEVEL", env={"GATEHOUSE_LOG_LEVEL": "   "}) == "info"


def test_environment_value_wins_over_default_and_is_stripped() -> None:
    env = {"GATEHOUSE_LOG_LEVEL": " debug \n"}
    assert settings.get("GATEHOUSE_LOG_LEVEL", env=env) == "debug"


def test_process_environment_is_read_when_no_mapping_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEGEN_MODEL", "openai/gpt-4o-mini")
    assert settings.get("CODEGEN_MODEL") == "openai/gpt-4o-mini"


def test_undeclared_setting_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        settings.get("GATEHOUSE_NOT_A_SETTING", env={})


def test_get_float_reads_number_and_default() -> None:
    assert settings.get_float("GATEHOUSE_CONFIG_TTL", env={}) == 2.0
    assert settings.get_float("GATEHOUSE_CONFIG_TTL", env={"GATEHOUSE_CONFIG_TTL": "0.5"}) == 0.5


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("soon", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("-1", "negative"),
    ],
)
def test_get_float_rejects_bad_value_naming_the_variable(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"GATEHOUSE_CONFIG_TTL.*{problem}") as caught:
        settings.get_float("GATEHOUSE_CONFIG_TTL", env={"GATEHOUSE_CONFIG_TTL": raw})
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError still work


def test_home_dir_follows_gatehouse_home(tmp_path: Path) -> None:
    assert settings.home_dir({"GATEHOUSE_HOME": str(tmp_path / "state")}) == tmp_path / "state"
    assert settings.home_dir({}) == Path(".gatehouse")
