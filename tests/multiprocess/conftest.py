"""Two real ``pserve`` processes on one PostgreSQL database (and one Redis, when reachable).

The database is ``<name of APPROVALRULES_TEST_DATABASE_URL>_mp``: created afresh, migrated,
loaded with rules/ and the development key and admin, and dropped afterwards.  Each
process's standard error goes to a file that is printed when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from approvalrules.store.testing import DATABASE_ENV

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "ar_0000dev0_development-key-not-secret"
REDIS_ENV = "APPROVALRULES_TEST_REDIS_URL"

INI = """\
[app:main]
use = egg:approvalrules
sqlalchemy.url = {url}
{redis}
approvalrules.rules_dir = {rules}
approvalrules.session_secret = mp-{secret}
approvalrules.dev_api_key = {key}
approvalrules.dev_admin = admin:admin-password
approvalrules.rate_limit_per_minute = 100000
retry.attempts = 3
tm.manager_hook = pyramid_tm.explicit_manager

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = 4

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_url() -> str | None:
    """The test Redis (APPROVALRULES_TEST_REDIS_URL, default db 0 on 127.0.0.1) or None."""
    import redis

    url = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping()
    except Exception:  # noqa: BLE001
        return None
    return url


@dataclass
class Server:
    """One ``pserve`` process."""

    ini: Path
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        pserve = Path(sys.executable).parent / "pserve"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [str(pserve), str(self.ini)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pserve exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pserve on {self.port} did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class Pair:
    a: Server
    b: Server
    db_url: str
    redis_url: str | None

    def logs(self) -> str:
        return "\n".join(
            f"--- pserve {s.port} ---\n{s.log.read_text() if s.log.exists() else ''}"
            for s in (self.a, self.b)
        )


def _recreate_database(url: str, base: str) -> None:
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two pserve processes (A and B) on one freshly loaded PostgreSQL database."""
    base = os.environ.get(DATABASE_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {DATABASE_ENV} (two pserve processes)")
    from approvalrules.store.commands import dev_credentials, load
    from approvalrules.store.testing import drop_postgres_database

    url = make_url(base)
    db_url = url.set(database=f"{url.database}_mp").render_as_string(hide_password=False)
    _recreate_database(db_url, base)
    folder = tmp_path_factory.mktemp("multiprocess")
    redis = redis_url()
    redis_line = f"approvalrules.redis_url = {redis}" if redis else ""
    secret = uuid.uuid4().hex
    servers = []
    for name in ("a", "b"):
        port = free_port()
        ini = folder / f"{name}.ini"
        ini.write_text(
            INI.format(
                url=db_url,
                redis=redis_line,
                rules=ROOT / "rules",
                secret=secret,
                key=DEV_KEY,
                port=port,
            )
        )
        servers.append(Server(ini, port, folder / f"{name}.log"))
    found = Pair(servers[0], servers[1], db_url, redis)
    try:
        load(servers[0].ini, ROOT / "rules")
        dev_credentials(servers[0].ini)
        for server in servers:
            server.start()
        yield found
    finally:
        for server in servers:
            server.stop()
        drop_postgres_database(db_url, base)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and "pair" in item.funcargs:
        report.sections.append(("pserve logs", item.funcargs["pair"].logs()))
    return report
