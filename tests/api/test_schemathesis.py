"""Property-based fuzzing of the served OpenAPI document (schemathesis).

No 5xx, every response matches its schema.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is part of the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks

    # business refusals (an unknown buyer is a 422) are correct answers to schema-valid
    # input, so positive_data_acceptance is not among them
    return [
        not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]


CHECKS = _checks()


def operations(world):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    for result in schema.get_all_operations():
        yield result.ok()


def test_no_5xx_and_responses_match_the_schema(world):
    headers = {"Authorization": f"Bearer {world.keys['demo']}"}
    checked = 0
    for operation in operations(world):

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )
            case.validate_response(response, checks=CHECKS, headers=headers)

        run()
        checked += 1
    assert checked >= 20
