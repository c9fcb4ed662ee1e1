"""Build the wheel, install it in a fresh venv and serve pages from the installed copy.

views/, templates/, schemas/ and alembic/ sit at the top level of the checkout and are
mapped into the package by setuptools; this proves the mapping survives a real install.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

# Not marked slow although it takes a minute: no smaller test proves that a wheel installs
# and serves outside the checkout, so CI runs it (on SQLite only: it needs no database).

ROOT = Path(__file__).resolve().parent.parent

MAPPED = {  # package -> folder of the checkout, as in pyproject.toml's package-dir
    "approvalrules.views": "views",
    "approvalrules.templates": "templates",
    "approvalrules.schemas": "schemas",
    "approvalrules.alembic": "alembic",
}
SHIPPED = {".py", ".json", ".pt", ".css", ".js", ".svg", ".mako", ".yaml", ".txt"}

PROBE = r"""
import importlib, json
import approvalrules.app, approvalrules.views, approvalrules.templates, approvalrules.schemas
import approvalrules.alembic
from importlib.resources import files
print(json.dumps({
    # approvalrules.alembic is a namespace package (no __init__.py, so that it never shadows
    # the alembic library): it has a search path, not a file
    "modules": {m.__name__: m.__file__ or list(m.__path__)[0] for m in (approvalrules.app,
                approvalrules.views, approvalrules.templates, approvalrules.schemas,
                approvalrules.alembic)},
    "templates": sorted(p.name for p in files("approvalrules.templates").iterdir()),
    "static": sorted(p.name for p in (files("approvalrules.templates") / "static").iterdir()),
    "schema": approvalrules.schemas.schema_path("ruleset.schema.json").is_file(),
    # the package's folder on disk (a namespace package's files() is a MultiplexedPath)
    "dirs": {name: list(importlib.import_module(name).__path__)[0] for name in (
        "approvalrules.views", "approvalrules.templates", "approvalrules.schemas",
        "approvalrules.alembic")},
}))
"""


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def clean_env():
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as res:
                return res.status, res.read().decode("utf-8")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, workdir): a fresh venv holding the wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    env = clean_env()
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp / "dist"), str(ROOT), env=env)
    [wheel] = (tmp / "dist").glob("approvalrules-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", str(venv), env=env)
    # Dependencies come from whatever index pip is configured with (pip.conf, PIP_*).
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), env=env)
    work = tmp / "work"  # outside the checkout, so nothing can be imported from it
    work.mkdir()
    return venv, work


def test_installed_modules_and_package_data(installed):
    venv, work = installed
    out = run(str(venv / "bin" / "python"), "-c", PROBE, cwd=work, env=clean_env()).stdout
    probe = json.loads(out)
    for name, file in probe["modules"].items():
        assert Path(file).resolve().is_relative_to(venv.resolve()), (name, file)
        assert not Path(file).resolve().is_relative_to(ROOT), (name, file)
    assert {"home.pt", "layout.pt", "static"} <= set(probe["templates"])
    assert "app.css" in probe["static"]
    for package, folder in MAPPED.items():
        installed_dir = Path(probe["dirs"][package])
        for source in (ROOT / folder).rglob("*"):
            if source.suffix in SHIPPED and "__pycache__" not in source.parts:
                relative = source.relative_to(ROOT / folder)
                assert (installed_dir / relative).is_file(), f"{folder}/{relative} not installed"
    if not (ROOT / "schemas" / "ruleset.schema.json").exists():
        pytest.skip("schemas/ruleset.schema.json not written yet: package-data check skipped")
    assert probe["schema"], "ruleset.schema.json missing from the installed package"


def test_installed_app_serves(installed):
    venv, work = installed
    port = free_port()
    rules = work / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "sample.yaml").write_text("ruleset: sample\ndescription: from the wheel\n")
    (work / "app.ini").write_text(
        textwrap.dedent(f"""\
        [app:main]
        use = egg:approvalrules
        sqlalchemy.url = sqlite:///{work / "app.sqlite"}
        approvalrules.rules_dir = {rules}

        [server:main]
        use = egg:waitress#main
        listen = 127.0.0.1:{port}
        """)
    )
    log = work / "pserve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(venv / "bin" / "pserve"), "app.ini"],
            cwd=work,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        status, body = get(f"http://127.0.0.1:{port}/health")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "version": "0.1.0"}
        status, body = get(f"http://127.0.0.1:{port}/")
        assert status == 200
        assert "sample.yaml" in body and "from the wheel" in body
        css = body.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
        assert get(css)[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
        print(log.read_text())  # shown by pytest when the test fails
