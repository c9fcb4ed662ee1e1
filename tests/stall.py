"""Test helpers for a stalled database: a TCP proxy that can blackhole, and a real waitress.

``BlackholeProxy`` forwards between a local port and PostgreSQL until ``blackhole()``: then it
stops reading and stops accepting, so every byte the client sends is still acknowledged (by
this machine's kernel) yet nothing ever answers.  That is the worst case for a client: TCP
keepalives and ``tcp_user_timeout`` see a healthy peer, exactly as with a frozen PostgreSQL
process (SIGSTOP) or a partition behind a middlebox that still acknowledges, so only the
application's own deadline (``approvalrules.db.reply_timeout``) and ``connect_timeout`` can end
the wait.  A real partition (packets dropped) would in addition be caught by the kernel's
``tcp_user_timeout``; simulating one needs network privileges a test cannot assume.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from contextlib import contextmanager, suppress

import waitress


class BlackholeProxy:
    """``127.0.0.1:<port>`` -> ``target``, until :meth:`blackhole`; :meth:`restore` resumes."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def blackhole(self) -> None:
        self._forwarding.clear()

    def restore(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self._closed.set()
        self._forwarding.set()
        for sock in [self.listener, *self._sockets]:
            with suppress(OSError):
                sock.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            if not self._forwarding.is_set():
                # new connections wait in the kernel's backlog: the handshake completes,
                # the startup packet is acknowledged, no answer comes
                time.sleep(0.05)
                continue
            ready, _, _ = select.select([self.listener], [], [], 0.1)
            if not ready or not self._forwarding.is_set():
                continue
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if not self._forwarding.is_set():
                    time.sleep(0.05)  # read nothing: the bytes stay, acknowledged, in the buffer
                    continue
                ready, _, _ = select.select([source], [], [], 0.1)
                if not ready or not self._forwarding.is_set():  # blackholed while waiting
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def serving(app, threads: int = 4):
    """``app`` served by waitress on a free local port, with ``threads`` worker threads."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Client("127.0.0.1", server.effective_port)
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        server.close()


class Client:
    """Plain HTTP against a served app: ``(status, headers, json body or text, seconds)``."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        payload = json.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        started = time.monotonic()
        try:
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            elapsed = time.monotonic() - started
            content_type = response.getheader("Content-Type") or ""
            data = json.loads(raw) if content_type.startswith("application/json") else raw
            return response.status, dict(response.getheaders()), data, elapsed
        finally:
            connection.close()


class Background:
    """One request on its own thread; ``result()`` waits for its answer."""

    def __init__(self, client: Client, *args, **kwargs):
        self._answer = None
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(client, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, client, args, kwargs):
        try:
            self._answer = client.request(*args, **kwargs)
        except BaseException as error:  # handed to the test thread
            self._error = error

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 60):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"no answer within {timeout} s"
        if self._error:
            raise self._error
        return self._answer
