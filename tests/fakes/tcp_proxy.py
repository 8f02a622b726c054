"""A TCP forwarder on 127.0.0.1 to cut a real server's connection path during a test.

    proxy = TcpProxy(5432).start()          # 127.0.0.1:<proxy.port> → 127.0.0.1:5432
    proxy.stop()                            # listener closed, live connections dropped
    proxy.start()                           # forwarding again, same port
    proxy.start(hold=True)                  # accept, but forward nothing until release()
    proxy.blackhole()                       # accept and read, never answer (live ones too)
    proxy.restore()                         # drop the black-holed connections, forward again

Threads are bounded: one accept thread, two pump threads per connection, at most
`max_connections` connections (more are closed at once).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any

HOST = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_port: int, *, target_host: str = HOST, max_connections: int = 32):
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.port = 0  # fixed by the first start()
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._blackholed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._held = 0
        self._threads: list[threading.Thread] = []

    def start(self, *, hold: bool = False) -> TcpProxy:
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        if hold:
            self._released.clear()
        else:
            self._released.set()
        self._spawn(self._accept_loop, listener)
        return self

    def release(self) -> None:
        """Let held connections through (and new ones straight away)."""
        self._released.set()

    def blackhole(self) -> None:
        """A server that accepts TCP and never answers: bytes sent on live connections and on
        new ones are read and dropped, nothing comes back. Idempotent."""
        self._blackholed.set()

    def restore(self) -> None:
        """End the blackhole: its connections are dropped (their streams lost bytes), new ones
        are forwarded again."""
        self._blackholed.clear()
        self._drop_connections()

    @property
    def held(self) -> int:
        """Connections accepted and waiting for release()."""
        with self._lock:
            return self._held

    def stop(self) -> None:
        """Close the listener and drop every live connection; idempotent."""
        self._stopping.set()
        self._blackholed.clear()
        self._drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> TcpProxy:
        return self if self._listener else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- internals -----------------------------------------------------------------

    def _drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not sel.select(timeout=0.05):
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                with self._lock:
                    full = len(self._sockets) >= 2 * self.max_connections
                    if not full:
                        self._sockets.add(client)
                        self.accepted += 1
                if full:
                    client.close()
                else:
                    self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            self._held += 1
        while not self._released.wait(0.05):
            if self._stopping.is_set():
                break
        with self._lock:
            self._held -= 1
        if self._stopping.is_set():
            return _close(client)
        if self._blackholed.is_set():
            return self._pump(client, None)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            return _close(client)
        upstream.settimeout(None)
        with self._lock:
            if self._stopping.is_set():
                _close(upstream)
                return _close(client)
            self._sockets.add(upstream)
        self._spawn(self._pump, upstream, client)
        self._pump(client, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        """Forward src → dst; while black-holed (or with no dst) read and drop."""
        try:
            while data := src.recv(65536):
                if dst is not None and not self._blackholed.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        _close(src)
        if dst is not None:
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class BlackholeProxy(TcpProxy):
    """A TcpProxy that can turn into a black hole: `blackhole()` keeps every connection open
    and accepts new ones, but from then on forwards nothing either way (a database whose
    host stopped answering without closing anything). `stop()` closes it all.

        proxy = BlackholeProxy(5432).start()
        ...                      # traffic flows
        proxy.blackhole()        # reads and writes now hang
    """

    def __init__(self, target_port: int, **kwargs: Any):
        super().__init__(target_port, **kwargs)
        self._blackholed = threading.Event()

    def blackhole(self) -> None:
        self._blackholed.set()

    def restore(self) -> None:
        """Forward again (data swallowed meanwhile stays lost, as on a real network)."""
        self._blackholed.clear()

    @property
    def blackholed(self) -> bool:
        return self._blackholed.is_set()

    def _connect(self, client: socket.socket) -> None:
        if self._blackholed.is_set():
            return self._swallow(client)
        super()._connect(client)

    def _swallow(self, client: socket.socket) -> None:
        try:
            while not self._stopping.is_set() and client.recv(65536):
                pass
        except OSError:
            pass
        _close(client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._blackholed.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)
