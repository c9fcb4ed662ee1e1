"""``approvalrules dump-directory`` and ``sync-directory``: the sample tenant's directory
dumps and syncs back unchanged; a bad row exits 1 naming FILE:LINE and keeps nothing."""

from __future__ import annotations

from pathlib import Path

from approvalrules import cli
from approvalrules.store import commands

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_dump_then_sync_back_and_a_bad_row(tmp_path, capsys):
    ini = tmp_path / "test.ini"
    ini.write_text(
        "[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = sqlite:///%(here)s/cli.sqlite\n"
    )
    commands.load(ini, RULES)
    dumped = tmp_path / "demo.csv"
    assert cli.main(["dump-directory", str(ini), "--format", "csv", "-o", str(dumped)]) == 0
    text = dumped.read_text()
    assert "membership,,acme,bob," in text

    assert cli.main(["sync-directory", str(ini), str(dumped)]) == 0
    out = capsys.readouterr().out
    assert " 0 created, 0 updated," in out and "nothing to change" in out

    bad = tmp_path / "bad.csv"
    # type, id, company, account, then role (the 11th of the 25 columns) a role acme lacks
    row = ["membership", "", "acme", "bob"] + [""] * 6 + ["pope"] + [""] * 14
    bad.write_text(text + ",".join(row) + "\n")
    assert cli.main(["sync-directory", str(ini), str(bad)]) == 1
    err = capsys.readouterr().err
    last_line = len(bad.read_text().splitlines())
    assert f"{bad}:{last_line}:" in err and "pope" in err
    assert cli.main(["dump-directory", str(ini), "--format", "csv"]) == 0
    assert capsys.readouterr().out == text  # the refused sync kept nothing
