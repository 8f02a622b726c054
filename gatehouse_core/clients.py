"""The gateway's HTTP clients: one per provider config, shared by the calls that use it.

A key or config change makes the next call build a new client. The old one is retired, not
closed: calls that still hold it (one sleeping between retries, an open stream, a stream being
drained after its caller left) keep using it, and the last of them closes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import openai

from .registry import ResolvedProvider

ClientFactory = Callable[[ResolvedProvider, float], openai.OpenAI]


def default_client_factory(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
    """One OpenAI client per provider config; our loop is the only retry loop."""
    config = provider.config
    return openai.OpenAI(
        base_url=config.base_url,
        api_key=provider.api_key or "missing",
        max_retries=0,
        timeout=timeout,
        default_headers=dict(config.headers) or None,
    )


def client_identity(provider: ResolvedProvider, timeout: float) -> tuple[Any, ...]:
    """What a client is built from: when it changes, the provider needs a new client."""
    config = provider.config
    return (config.base_url, tuple(sorted(config.headers.items())), provider.api_key, timeout)


class _Entry:
    __slots__ = ("identity", "client", "users", "retired")

    def __init__(self, identity: tuple[Any, ...], client: openai.OpenAI):
        self.identity = identity
        self.client = client
        self.users = 0
        self.retired = False


class Lease:
    """One call's hold on a client; `release()` once (more calls do nothing)."""

    __slots__ = ("client", "_pool", "_entry")

    def __init__(self, pool: ClientPool, entry: _Entry):
        self.client = entry.client
        self._pool = pool
        self._entry: _Entry | None = entry

    def share(self) -> Lease:
        """A second hold on the same client (for a stream drained after its caller left)."""
        assert self._entry is not None, "share() after release()"
        return self._pool._hold(self._entry)

    def release(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            self._pool._let_go(entry)


class ClientPool:
    """Thread-safe map of provider name to its current client, reference counted."""

    def __init__(self, factory: ClientFactory, timeout: float):
        self._factory = factory
        self._timeout = timeout
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def lease(self, provider: ResolvedProvider) -> Lease:
        """Hold the provider's client, building it first if the config or key changed.

        Whatever the client factory raises propagates (the gateway records it as the attempt's
        failure)."""
        name, identity = provider.config.name, client_identity(provider, self._timeout)
        retired: _Entry | None = None
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.identity != identity:
                new = _Entry(identity, self._factory(provider, self._timeout))
                if entry is not None:
                    entry.retired = True
                    retired = entry if entry.users == 0 else None
                self._entries[name] = entry = new
            entry.users += 1
            lease = Lease(self, entry)
        if retired is not None:
            retired.client.close()
        return lease

    def close(self) -> None:
        """Close idle clients now and the ones in use when their last call lets go."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            idle = []
            for entry in entries:
                entry.retired = True
                if entry.users == 0:
                    idle.append(entry)
        for entry in idle:
            entry.client.close()

    def _hold(self, entry: _Entry) -> Lease:
        with self._lock:
            entry.users += 1
        return Lease(self, entry)

    def _let_go(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            closing = entry.retired and entry.users == 0
        if closing:
            entry.client.close()
