"""docs/api.md's examples, run as written against a live server (waitress on a free port).

Each ``sh`` block runs in bash with ``set -eo pipefail`` (curl -f fails on any 4xx/5xx); the
``python`` blocks run in order in one namespace, as a reader pasting them would.  A changed
field name or status in the API breaks this test before it breaks an integrator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.S | re.M)


def blocks(kind: str, section: str | None = None) -> list[str]:
    text = DOC.read_text()
    if section is not None:
        text = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return [code for found, code in BLOCK.findall(text) if found == kind]


@pytest.fixture
def live(world):
    """The test app on http://127.0.0.1:<port>, with the environment the examples read."""
    from waitress.server import create_server

    server = create_server(world.app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    env = {
        "APPROVALRULES_URL": f"http://127.0.0.1:{server.effective_port}",
        "APPROVALRULES_KEY": world.keys["demo"],
    }
    yield env
    server.close()
    thread.join(timeout=5)


FLOWS = ("1. Evaluate at checkout", "2. Submit and follow an order", "3. Approve from an inbox")


def test_the_python_examples_of_the_three_flows_run(live, monkeypatch):
    for name, value in live.items():
        monkeypatch.setenv(name, value)
    namespace: dict = {}
    for section in FLOWS:
        (code,) = blocks("python", section)
        exec(compile(code, f"docs/api.md: {section}", "exec"), namespace)  # noqa: S102
    # the last flow approved the order the second one submitted
    order, _ = namespace["call"]("GET", "/api/v1/orders/PO-2026-0002")
    assert order["status"] == "approved"


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq")
def test_the_curl_examples_of_the_three_flows_run(live):
    script = "\n".join(code for section in FLOWS for code in blocks("sh", section))
    done = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + script],
        env={**os.environ, **live},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    # evaluate said pending; the submitted order was pending; ann's approval approved it
    assert '"outcome": "pending"' in done.stdout
    assert done.stdout.rstrip().endswith('"approved"')
