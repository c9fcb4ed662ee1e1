"""``approvalrules diff --server URL``: a version read from a running server through its API,
compared with a local file (issue 16, "Remote diff"), end to end over real HTTP.

The app of the API suite is served by waitress on a free port; the command reads the
server's version and directory with a read_only key from ``APPROVALRULES_API_KEY``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from approvalrules.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(world):
    from waitress.server import create_server

    httpd = create_server(world.app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.effective_port}"
    httpd.close()
    thread.join(timeout=5)


@pytest.fixture
def qa_key(world, monkeypatch):
    """QA's read_only key, where the command looks for it."""
    monkeypatch.setenv("APPROVALRULES_API_KEY", world.keys["read_only"])
    return world.keys["read_only"]


def raised_threshold(tmp_path: Path) -> Path:
    """rules/acme.yaml with Marketing's threshold raised from 500 to 1000 (ACCEPTANCE F1)."""
    text = (ROOT / "rules" / "acme.yaml").read_text()
    assert "total: {gt: 500}" in text
    changed = tmp_path / "acme.yaml"
    changed.write_text(text.replace("total: {gt: 500}", "total: {gt: 1000}"))
    # the local file's `extends: tenant-default` resolves beside it, as in a rules checkout
    (tmp_path / "tenant-default.yaml").write_text((ROOT / "rules/tenant-default.yaml").read_text())
    return changed


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["diff", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_server_version_against_a_local_file_finds_the_behaviour_change(
    server, qa_key, tmp_path, capsys
):
    changed = raised_threshold(tmp_path)
    code, out, err = run(
        capsys, "demo/acme@active", str(changed), "--server", server, "--format", "json"
    )
    assert code == 1, err
    report = json.loads(out)
    assert [c["path"] for c in report["structural"]] == ["approval.steps[marketing].when"]
    changes = report["behavioural"]["changes"]
    # ACCEPTANCE F1, found from the server's version and the server's directory
    assert "orders over 500 up to 1000 by Marketing members: pending -> approved" in [
        c["text"] for c in changes
    ]
    # the key never shows, neither in the report nor in messages
    assert qa_key not in out and qa_key not in err


def test_the_server_version_against_its_own_text_changes_nothing(server, qa_key, tmp_path, capsys):
    # the active version's text, saved locally: no structural change at all
    code, out, err = run(
        capsys, "demo/acme@active", "demo/acme@active", "--server", server, "--format", "json"
    )
    assert code in (0, 3), err
    assert json.loads(out)["structural"] == []


def test_numbered_versions_and_the_text_text_report(server, qa_key, tmp_path, capsys):
    code, out, err = run(capsys, "demo/acme@1", str(raised_threshold(tmp_path)), "--server", server)
    assert code == 1, err
    assert "1000" in out and qa_key not in out + err


def test_a_storefront_key_is_told_which_scope_it_needs(server, world, monkeypatch, capsys):
    monkeypatch.setenv("APPROVALRULES_API_KEY", world.keys["storefront"])
    code, out, err = run(
        capsys, "demo/acme@active", str(ROOT / "rules/acme.yaml"), "--server", server
    )
    assert code == 2
    assert "403" in err and "storefront scope" in err and "read_only or merchant" in err
    assert world.keys["storefront"] not in err


def test_a_reference_to_another_tenant_is_refused(server, qa_key, capsys):
    code, _, err = run(
        capsys, "other/acme@active", str(ROOT / "rules/acme.yaml"), "--server", server
    )
    assert code == 2 and "belongs to tenant 'demo'" in err


def test_no_key_and_no_server_say_what_to_do(server, monkeypatch, capsys):
    monkeypatch.delenv("APPROVALRULES_API_KEY", raising=False)
    code, _, err = run(
        capsys, "demo/acme@active", str(ROOT / "rules/acme.yaml"), "--server", server
    )
    assert code == 2 and "APPROVALRULES_API_KEY" in err
    code, _, err = run(
        capsys,
        "demo/acme@active",
        str(ROOT / "rules/acme.yaml"),
        "--server",
        "http://127.0.0.1:9",
        "--key",
        "ar_00000000_" + "x" * 40,
    )
    assert code == 2 and "does not answer" in err and "x" * 40 not in err


def test_an_unknown_version_is_the_servers_404(server, qa_key, capsys):
    code, _, err = run(capsys, "demo/acme@999", str(ROOT / "rules/acme.yaml"), "--server", server)
    assert code == 2 and "404" in err and "no version 999" in err
