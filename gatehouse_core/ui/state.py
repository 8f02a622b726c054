"""Process-wide resources, built once with `st.cache_resource` and shared by every session.

Each getter reads the current settings and passes what identifies the resource (database
URL, a fingerprint of the secrets key) as the cache key, so a changed environment builds
a new resource instead of reusing a stale one. Secrets never go into `st.cache_data`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

import streamlit as st
from sqlalchemy import Engine

from .. import settings
from ..auth import UserStore
from ..crypto import SecretBox
from ..db import make_engine
from ..registry import Registry
from ..sessions import SessionStore

log = logging.getLogger("gatehouse.console")

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..gateway import Gateway


def database_url() -> str:
    return settings.get("GATEHOUSE_DATABASE_URL") or "sqlite:///gatehouse.db"


def _secrets_identity() -> str:
    """Changes when GATEHOUSE_SECRETS_KEY or GATEHOUSE_HOME changes; reveals nothing."""
    raw = f"{settings.get('GATEHOUSE_SECRETS_KEY') or ''}|{settings.home_dir()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@st.cache_resource(show_spinner=False, on_release=lambda engine: engine.dispose())
def _engine(url: str) -> Engine:
    return make_engine(url)


@st.cache_resource(show_spinner=False)
def _box(identity: str) -> SecretBox:
    return SecretBox.from_env()


@st.cache_resource(show_spinner=False)
def _registry(url: str, identity: str) -> Registry:
    return Registry(_engine(url), _box(identity))


@st.cache_resource(show_spinner=False)
def _users(url: str) -> UserStore:
    return UserStore(_engine(url))


@st.cache_resource(show_spinner=False)
def _sessions(url: str, idle: str, max_age: str) -> SessionStore:
    return SessionStore(_engine(url))


@st.cache_resource(show_spinner=False)
def _catalog(url: str) -> Catalog:
    from ..catalog import Catalog

    return Catalog(_engine(url))


def _close_gateway(gateway: Any) -> None:
    gateway.close()


@st.cache_resource(show_spinner=False, on_release=_close_gateway)
def _gateway(url: str, identity: str) -> Gateway:
    from ..gateway import Gateway

    return Gateway.from_env(registry=_registry(url, identity))


def engine() -> Engine:
    """The database engine (migrated on first use)."""
    return _engine(database_url())


def box() -> SecretBox:
    return _box(_secrets_identity())


def registry() -> Registry:
    """The provider registry; every change through it is audited with the given actor."""
    return _registry(database_url(), _secrets_identity())


def users() -> UserStore:
    return _users(database_url())


def sessions() -> SessionStore:
    """The console session store (its lifetimes from GATEHOUSE_SESSION_IDLE / _MAX)."""
    return _sessions(
        database_url(),
        settings.get("GATEHOUSE_SESSION_IDLE") or "",
        settings.get("GATEHOUSE_SESSION_MAX") or "",
    )


def catalog() -> Catalog:
    return _catalog(database_url())


def gateway() -> Gateway:
    """The gateway, shared by every session of this process (it is thread-safe)."""
    return _gateway(database_url(), _secrets_identity())


def warm_up() -> None:
    """Build the shared engine (migrating it), registry and gateway once, at server start.

    A database that cannot be reached is not fatal here: the console then shows the cause on
    its first page, and the next request tries again.
    """
    try:
        engine()
        registry()
        gateway()
    except Exception as exc:  # logged by name only: messages may hold a URL
        log.warning("console start-up: shared resources not ready yet (%s)", type(exc).__name__)


def release_all() -> None:
    """At server shutdown: close every gateway (flushing its audit rows) and engine."""
    st.cache_resource.clear()
