"""The schema files work on their own, as an editor reads them: offline, from their location.

Every YAML file in rules/ names its schema in a ``# yaml-language-server: $schema=<path>``
header, relative to the file; check-jsonschema (what CI and editors' schema support do) must
validate each file against that schema with no network and no base-URI override.
"""

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
SCHEMAS = ROOT / "schemas"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
HEADER = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")

#: any fetch goes to a closed local port and fails at once: the check is proven offline
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def _yaml_files() -> list[Path]:
    return sorted(RULES.glob("*.yaml")) + sorted((RULES / "directories").glob("*.yaml"))


def _header_schema(path: Path) -> Path:
    first = path.read_text("utf-8").splitlines()[0]
    match = HEADER.match(first)
    assert match, f"{path.relative_to(ROOT)}: first line is not a yaml-language-server header"
    return (path.parent / match.group(1)).resolve()


def test_every_rules_file_names_its_schema_by_a_relative_path_that_exists():
    files = _yaml_files()
    assert len(files) > 20
    for path in files:
        target = _header_schema(path)
        expected = "directory" if path.parent.name == "directories" else "ruleset"
        assert target == SCHEMAS / f"{expected}.schema.json", path


def test_no_schema_names_an_address_to_fetch():
    for path in SCHEMAS.glob("*.schema.json"):
        text = path.read_text("utf-8")
        document = json.loads(text)
        assert "$id" not in document, path.name
        refs = re.findall(r'"\$ref":\s*"([^"]+)"', text)
        assert refs, path.name
        for ref in refs:
            target, _, _ = ref.partition("#")
            # a reference is inside the file (#/...) or names a sibling file
            assert target == "" or (SCHEMAS / target).is_file(), (path.name, ref)


@pytest.mark.skipif(not CHECK_JSONSCHEMA.exists(), reason="check-jsonschema not installed")
def test_check_jsonschema_validates_every_rules_file_offline_against_its_header_schema():
    by_schema = defaultdict(list)
    for path in _yaml_files():
        by_schema[_header_schema(path)].append(path)
    env = {**os.environ, **OFFLINE}
    for schema_file, files in by_schema.items():
        result = subprocess.run(
            [str(CHECK_JSONSCHEMA), "--no-cache", "--schemafile", str(schema_file)]
            + [str(f) for f in files],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, (
            schema_file.name,
            result.stdout[-2000:],
            result.stderr[-2000:],
        )
        assert "ok -- validation done" in result.stdout


@pytest.mark.skipif(not CHECK_JSONSCHEMA.exists(), reason="check-jsonschema not installed")
def test_check_jsonschema_reports_a_broken_setting_through_the_cross_file_reference(tmp_path):
    # membership settings are defined in ruleset.schema.json: the reference must be followed,
    # from the file, for this mistake to be found
    broken = tmp_path / "directory.yaml"
    broken.write_text(
        "accounts:\n  a:\n    memberships:\n"
        "      - {company: c, role: r, settings: {may_order: sometimes}}\n",
        "utf-8",
    )
    result = subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--no-cache",
            "--schemafile",
            str(SCHEMAS / "directory.schema.json"),
            str(broken),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sometimes" in result.stdout
    assert "Unretrievable" not in result.stdout + result.stderr
