"""The loader treats YAML as hostile input.

Every bad document is a DocumentError naming line and path.
"""

from __future__ import annotations

import json

import pytest

from approvalrules.engine import check_ruleset
from approvalrules.engine.load import MAX_BYTES, MAX_DEPTH, load_document
from approvalrules.errors import DocumentError, DocumentTooLarge

from .conftest import load_in_subprocess, only_problem, problems_of


def load_problem(text, source="t.yaml"):
    with pytest.raises(DocumentError) as info:
        load_document(text, source)
    assert len(info.value.problems) == 1
    return info.value.problems[0]


# ------------------------------------------------------------- plain data


def test_plain_data_and_lines_are_kept():
    doc = load_document("ruleset: x\napproval:\n  steps:\n    - name: a\n    - name: b\n", "r.yaml")
    assert doc.data == {"ruleset": "x", "approval": {"steps": [{"name": "a"}, {"name": "b"}]}}
    assert doc.line_of(("approval", "steps", 1, "name")) == 5
    assert doc.line_of(("approval", "steps", 1, "missing", "deeper")) == 5
    assert doc.line_of(("ruleset",)) == 1


def test_malformed_yaml_names_the_line():
    p = load_problem("ruleset: x\nroles:\n  admin: {label: Admin\n  user: {}\n")
    assert p.code == "yaml_syntax"
    assert p.line in (3, 4)
    assert p.path == ""
    assert p.format().startswith(f"t.yaml:{p.line}: (root): malformed YAML")


def test_unclosed_quote_is_a_syntax_error():
    p = load_problem('ruleset: "x\n')
    assert p.code == "yaml_syntax"
    assert p.line is not None


def test_two_documents_in_one_file_are_refused():
    p = load_problem("ruleset: a\n---\nruleset: b\n")
    assert p.code == "several_documents"
    assert p.line == 2
    assert "one YAML document" in p.message


# ---------------------------------------------------------- duplicate keys


def test_duplicate_top_level_key():
    p = load_problem("ruleset: a\ncurrency: USD\nruleset: b\n")
    assert p.code == "duplicate_key"
    assert (p.line, p.path) == (3, "ruleset")
    assert p.format() == "t.yaml:3: ruleset: duplicate key 'ruleset' (first defined on line 1)"


def test_duplicate_key_nested_deep():
    text = (
        "ruleset: a\n"
        "approval:\n"
        "  steps:\n"
        "    - name: one\n"
        "      when:\n"
        "        all:\n"
        "          - total: {gt: 1}\n"
        "          - lines:\n"
        "              sku: A\n"
        "              category: c\n"
        "              sku: B\n"
    )
    p = load_problem(text)
    assert p.code == "duplicate_key"
    assert p.line == 11
    assert p.path == "approval.steps[0].when.all[1].lines.sku"
    assert p.format() == (
        "t.yaml:11: approval.steps[0].when.all[1].lines.sku: "
        "duplicate key 'sku' (first defined on line 9)"
    )


def test_duplicate_key_in_flow_mapping():
    p = load_problem("roles: {a: {label: A}, a: {label: B}}\n")
    assert (p.code, p.line, p.path) == ("duplicate_key", 1, "roles.a")


def test_quoted_and_plain_spelling_of_one_key_are_duplicates():
    p = load_problem('ruleset: a\n"ruleset": b\n')
    assert (p.code, p.line, p.path) == ("duplicate_key", 2, "ruleset")


# ----------------------------------------------------------------- aliases


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_quickly():
    import time

    started = time.perf_counter()
    p = load_problem(BILLION_LAUGHS)
    assert time.perf_counter() - started < 2
    assert p.code in ("too_many_aliases", "too_many_nodes")
    assert p.line is not None and 2 <= p.line <= 9
    assert p.path.startswith(("b[", "c[", "d[", "e[", "f[", "g[", "h[", "i["))
    assert p.format().startswith(f"t.yaml:{p.line}: {p.path}: ")


def test_a_few_aliases_are_fine():
    doc = load_document("x: &n {label: N}\nroles: {a: *n, b: *n}\n")
    assert doc.data["roles"] == {"a": {"label": "N"}, "b": {"label": "N"}}


def test_self_referencing_alias():
    p = load_problem("a: &x [*x]\n")
    assert (p.code, p.line, p.path) == ("recursive_alias", 1, "a[0]")
    assert p.format() == "t.yaml:1: a[0]: alias *x refers to the collection that contains it"


def test_self_referencing_mapping_alias():
    p = load_problem("a: &x\n  b: *x\n")
    assert p.code == "recursive_alias"
    assert p.path == "a.b"


def test_undefined_alias_is_a_syntax_error():
    p = load_problem("a: *nothing\n")
    assert p.code in ("yaml_syntax", "undefined_alias")
    assert p.line == 1


def test_merge_keys_do_not_merge():
    # YAML 1.2 has no merge keys: `<<` stays a plain key, which the schema then rejects
    text = "ruleset: x\nroles:\n  base: &b {label: B}\n  user:\n    <<: *b\n"
    doc = load_document(text)
    assert doc.data["roles"]["user"] == {"<<": {"label": "B"}}
    problems = problems_of(text)
    assert ("unknown_key", 5, "roles.user.<<") in [(p.code, p.line, p.path) for p in problems]


# ----------------------------------------------------------------- nesting


def nested_flow(depth: int) -> str:
    return "ruleset: x\ndescription: " + "[" * depth + "]" * depth + "\n"


def test_32_deep_nesting_loads():
    doc = load_document("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    assert doc.data["a"] is not None


def test_50_deep_nesting():
    p = load_problem(nested_flow(50))
    assert p.code == "too_deep"
    assert p.line == 2
    assert p.path == "description" + "[0]" * (MAX_DEPTH - 1)
    assert p.format() == f"t.yaml:2: {p.path}: nesting deeper than {MAX_DEPTH} levels"


def test_50_deep_block_nesting():
    text = "ruleset: x\n" + "".join("  " * i + f"k{i}:\n" for i in range(50)) + "  " * 50 + "v\n"
    p = load_problem(text)
    assert p.code == "too_deep"
    assert p.line == MAX_DEPTH + 2  # the value of key k31 would be one level too deep
    assert p.path == ".".join(f"k{i}" for i in range(MAX_DEPTH))


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_very_deep_flow_nesting(depth):
    result = load_in_subprocess(nested_flow(depth))
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["code"] == "too_deep"
    assert found["line"] == 2
    assert "nesting deeper than" in found["text"]
    assert found["text"].startswith("deep.yaml:2: ")


def test_very_deep_block_sequence_nesting():
    result = load_in_subprocess("- " * 100_000 + "x\n")
    assert result.returncode == 0, f"loader process died with {result.returncode}"
    assert json.loads(result.stdout)["code"] == "too_deep"


def test_very_deep_flow_nesting_after_brackets_in_a_comment():
    text = "# " + "]" * 100_000 + "\na: " + "[" * 100_000 + "]" * 100_000 + "\n"
    result = load_in_subprocess(text)
    assert result.returncode == 0, f"loader process died with {result.returncode}"
    assert json.loads(result.stdout)["code"] == "too_deep"


# -------------------------------------------------------------------- size


def test_ten_megabyte_file_is_too_large():
    text = "ruleset: x\ndescription: '" + "x" * (10 * 1024 * 1024) + "'\n"
    with pytest.raises(DocumentTooLarge) as info:
        check_ruleset(text, "big.yaml")
    (p,) = info.value.problems
    assert p.code == "document_too_large"
    assert "10,485,7" in p.message and f"{MAX_BYTES:,}" in p.message
    assert p.format().startswith("big.yaml:1: (root): the document is ")


def test_size_limit_counts_bytes_not_characters():
    text = "a: '" + "é" * (MAX_BYTES // 2 + 10) + "'"  # fewer characters than MAX_BYTES, more bytes
    assert len(text) < MAX_BYTES
    with pytest.raises(DocumentTooLarge):
        load_document(text)


def test_bytes_input_that_is_not_utf8():
    p = load_problem(b"ruleset: \xff\xfe\n")
    assert p.code == "not_utf8"


# ------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object:os.system {}\n",
        "a: !!python/object/apply:os.system ['echo hi']\n",
        "a: !!python/name:os.system ''\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x, y}\n",
        "a: !custom 1\n",
    ],
)
def test_non_plain_tags_are_refused(text):
    p = load_problem(text)
    assert p.code == "unsupported_tag"
    assert (p.line, p.path) == (1, "a")
    assert "is not allowed" in p.message


def test_python_object_tag_in_a_rule_set_never_runs():
    text = "ruleset: x\nroles:\n  a: !!python/object/apply:os.system ['touch /tmp/pwned-by-yaml']\n"
    p = only_problem(text)
    assert (p.code, p.line, p.path) == ("unsupported_tag", 3, "roles.a")
    assert p.format().startswith(
        "t.yaml:3: roles.a: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"
    )


def test_explicit_str_tag_is_plain_data():
    assert load_document("a: !!str 123\n").data == {"a": "123"}


# ----------------------------------------------------- YAML 1.1 surprises


@pytest.mark.parametrize(
    "scalar, expected",
    [
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("N", "N"),
        ("1:30", "1:30"),
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("=", "="),
    ],
)
def test_yaml_1_1_scalars_stay_strings(scalar, expected):
    value = load_document(f"a: {scalar}\n").data["a"]
    assert value == expected
    assert type(value) is str


@pytest.mark.parametrize(
    "scalar, expected",
    [
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("1e3", 1000.0),
    ],
)
def test_yaml_1_2_core_scalars(scalar, expected):
    value = load_document(f"a: {scalar}\n").data["a"]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("scalar", [".inf", "-.inf", ".nan"])
def test_yaml_special_floats_do_not_escape_as_value_error(scalar):
    # YAML 1.2 core would read them as floats; no amount is infinite, so they stay text
    assert load_document(f"a: {scalar}\n").data == {"a": scalar}


def test_yaml_keys_stay_strings():
    doc = load_document("no: 1\non: 2\n1:30: 3\n")
    assert doc.data == {"no": 1, "on": 2, "1:30": 3}


# ---------------------------------------------------------------- numbers


def test_five_thousand_digit_integer():
    p = load_problem("ruleset: x\nlimits:\n  max_order_total: " + "9" * 5000 + "\n")
    assert (p.code, p.line, p.path) == ("number_too_large", 3, "limits.max_order_total")
    assert (
        p.format()
        == "t.yaml:3: limits.max_order_total: number with 5,000 digits; at most 30 are allowed"
    )


def test_five_thousand_digit_float():
    p = load_problem("a: 1." + "1" * 5000 + "\n")
    assert p.code == "number_too_large"
    assert (p.line, p.path) == (1, "a")


# -------------------------------------------------- odd characters / input


@pytest.mark.parametrize("text", ["a: \x00\n", "a: b\x07\n", "a: \x1b[31m\n"])
def test_control_characters_are_a_document_error(text):
    p = load_problem(text)
    assert p.code == "yaml_syntax"
    assert "control characters" in p.message


def test_lone_surrogate_is_a_document_error():
    with pytest.raises(DocumentError) as info:
        load_document("a: \ud800\n")
    assert info.value.problems[0].code == "invalid_character"


def test_empty_document_is_none():
    assert load_document("").data is None
    assert load_document("# only a comment\n").data is None


def test_complex_keys_are_refused():
    p = load_problem("? [a, b]\n: 1\n")
    assert (p.code, p.line) == ("invalid_key", 1)


def test_errors_never_chain_a_yaml_traceback():
    with pytest.raises(DocumentError) as info:
        load_document("a: [\n")
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ------------------------------------------- every error has a line, on any PyYAML


class _ScannerAtItsNestingLimit:
    """A parser standing in for libyaml from PyYAML 6.0.4 on, whose scanner has a nesting guard.

    It hands out a mapping, a key and ``depth`` flow sequences, then raises the
    scanner's own error, the way 6.0.4 does before our guard sees MAX_DEPTH levels.
    """

    def __init__(self, depth, line):
        import yaml

        mark = yaml.Mark("<unicode string>", 0, line - 1, 0, None, None)
        self.events = [
            yaml.StreamStartEvent(mark, mark),
            yaml.DocumentStartEvent(mark, mark),
            yaml.MappingStartEvent(None, None, True, mark, mark),
            yaml.ScalarEvent(None, None, (True, False), "description", mark, mark),
        ]
        self.events += [yaml.SequenceStartEvent(None, None, True, mark, mark) for _ in range(depth)]
        self.error = yaml.scanner.ScannerError(
            "while increasing flow level", mark, "exceeded maximum nesting depth", mark
        )

    def get_event(self):
        if self.events:
            return self.events.pop(0)
        raise self.error


def test_pyyaml_nesting_guard_is_reported_as_too_deep_with_line_and_path(monkeypatch):
    import approvalrules.engine.load as loader

    monkeypatch.setattr(loader, "_Parser", lambda text: _ScannerAtItsNestingLimit(depth=3, line=2))
    p = load_problem("ruleset: x\ndescription: [[[]]]\n", "deep.yaml")
    assert (p.code, p.line, p.path) == ("too_deep", 2, "description[0][0][0]")
    assert (
        p.format() == f"deep.yaml:2: description[0][0][0]: nesting deeper than {MAX_DEPTH} levels"
    )


def test_other_scanner_errors_stay_syntax_errors(monkeypatch):
    import yaml

    import approvalrules.engine.load as loader

    class Broken(_ScannerAtItsNestingLimit):
        def __init__(self):
            super().__init__(depth=0, line=3)
            self.error = yaml.scanner.ScannerError(
                "while scanning", None, "found a tab", self.error.problem_mark
            )

    monkeypatch.setattr(loader, "_Parser", lambda text: Broken())
    p = load_problem("a: 1\n", "t.yaml")
    assert (p.code, p.line) == ("yaml_syntax", 3)


@pytest.mark.parametrize(
    "text, line",
    [
        ("- a\n- b\n", 1),
        ("# a comment\n\njust words\n", 3),
        ("\n\n42\n", 3),
        ("", 1),
        ("# only a comment\n", 1),
    ],
)
def test_a_document_that_is_not_a_mapping_names_its_line(text, line):
    with pytest.raises(DocumentError) as info:
        check_ruleset(text, "t.yaml")
    (p,) = info.value.problems
    assert (p.code, p.line) == ("not_a_mapping", line)
    assert (
        p.format()
        == f"t.yaml:{line}: (root): a rule set is a YAML mapping starting with `ruleset: <name>`"
    )


@pytest.mark.parametrize(
    "text, line",
    [("ruleset: x\na: b\x07\n", 2), ("ruleset: ééééé\n\nb: \x07\n", 3), ("a: \x00\n", 1)],
)
def test_control_characters_name_their_line(text, line):
    p = load_problem(text)
    assert (p.code, p.line) == ("yaml_syntax", line)
    assert "position" not in p.message
    assert p.format().startswith(f"t.yaml:{line}: (root): malformed YAML: character U+")


def test_bytes_that_are_not_utf8_name_their_line():
    p = load_problem(b"ruleset: x\nname: \xff\xfe\n")
    assert (p.code, p.line) == ("not_utf8", 2)
    assert p.format().startswith("t.yaml:2: (root): the document is not UTF-8 text")
