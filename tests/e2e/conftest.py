"""Browser-test fixtures: a real `streamlit run app.py`, a fake OpenRouter, Debian's chromium.

One console server per module and database (SQLite, then PostgreSQL) and one browser per module
(starting them is the slow part); each test gets a fresh browser context and its own fake
upstream. The server gets its own temp folder, database, GATEHOUSE_HOME and secrets key, passed
explicitly: it is a separate process, so the per-test environment of tests/conftest.py does not
reach it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import unavailable
from tests.fakes.openrouter import FakeOpenRouter

from .browser import ARTIFACTS, TIMEOUT_MS

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
STARTUP_TIMEOUT_S = 60.0
# Variables of the developer's shell that would point the server at other state.
_INHERITED_PREFIXES = ("GATEHOUSE_", "CODEGEN_", "STREAMLIT_")


@dataclass(frozen=True)
class Console:
    """A running console: where to reach it and the environment it was started with."""

    database: str  # "sqlite" or "postgres"
    base_url: str
    env: dict[str, str]
    home: Path
    log: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run the real `gatehouse` CLI against the console's database."""
        return subprocess.run(
            [sys.executable, "-m", "gatehouse_core", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _health(base_url: str) -> bytes:
    try:
        with urllib.request.urlopen(base_url + "/_stcore/health", timeout=2) as response:
            return response.read().strip()
    except OSError:  # URLError is one: not listening yet
        return b""


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"streamlit exited with {process.returncode} before serving:\n{_log_tail(log)}"
            )
        if _health(base_url) == b"ok":
            return
        time.sleep(0.2)
    pytest.fail(f"streamlit not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found; install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(kind, GATEHOUSE_DATABASE_URL) of a fresh database for one console server."""
    if request.param == "sqlite":
        # Relative, like the README's default; resolved in the server's (and CLI's) cwd.
        yield "sqlite", "sqlite:///gatehouse.db"
        return
    admin_url = request.getfixturevalue("_postgres_admin")
    if admin_url.startswith("unavailable: "):
        unavailable(admin_url.removeprefix("unavailable: "))
    name = f"gatehouse_e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield "postgres", make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def artifacts(database: tuple[str, str]) -> Path:
    """test-artifacts/e2e/<database>/, emptied at the start of each run (gitignored)."""
    folder = ARTIFACTS / database[0]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def api_key() -> str:
    """A key unique to this test, so finding it anywhere can only mean a leak."""
    return f"sk-or-v1-e2e{secrets.token_hex(24)}"


@pytest.fixture
def fake_upstream(api_key: str) -> Iterator[FakeOpenRouter]:
    """The fake OpenRouter, in this process; it accepts only `api_key`."""
    with FakeOpenRouter(valid_keys={api_key}) as fake:
        yield fake


def launch_console(
    database: tuple[str, str], home: Path, log: Path, **settings: str
) -> Iterator[Console]:
    """`streamlit run app.py` on a free loopback port; `settings` are extra environment
    variables (e.g. GATEHOUSE_SESSION_IDLE). Several may share one database and home."""
    if not (home / ".streamlit").exists():
        # Streamlit reads .streamlit/config.toml from its cwd: give the server the project's
        # own (error details hidden, usage stats off), as `streamlit run app.py` in the repo has.
        (home / ".streamlit").mkdir(parents=True)
        shutil.copy(REPO / ".streamlit" / "config.toml", home / ".streamlit" / "config.toml")
    key_file = home / "e2e-secrets-key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(
        GATEHOUSE_DATABASE_URL=database[1],
        GATEHOUSE_HOME=str(home / ".gatehouse"),
        GATEHOUSE_SECRETS_KEY=key_file.read_text(),
        HOME=str(home),  # no ~/.streamlit of the developer's
        **settings,
    )
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=home, stdout=out, stderr=out)
    try:
        _wait_healthy(process, base_url, log)
        yield Console(database[0], base_url, env, home, log)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def console(
    chromium: Path,
    database: tuple[str, str],
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    """`streamlit run app.py` on a free loopback port against a fresh database."""
    home = tmp_path_factory.mktemp("console")
    yield from launch_console(database, home, artifacts / "streamlit.log")


@pytest.fixture(scope="module")
def chromium_browser(chromium: Path) -> Iterator[Browser]:
    """Debian's chromium through Playwright's sync API (never `playwright install`)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console_page(chromium_browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies or storage from other tests)."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = chromium_browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
