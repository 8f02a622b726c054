"""Schemathesis against the served OpenAPI document: no 5xx, answers match the document.

Provider writes are left out: generated base URLs would point the gateway at arbitrary hosts
(tests only talk to 127.0.0.1); the settings routes have their own tests. Cases are generated
per operation with Hypothesis directly (schemathesis' pytest plugin does not load under
pytest 9), derandomized so a run is repeatable.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.api.conftest import Api

EXAMPLES = 20
WRITES = {"POST", "PATCH", "DELETE"}


def test_no_server_errors_and_answers_match_the_document(api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api.base_url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {api.secrets['admin']}"}
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (
            operation.path.startswith("/v1/settings/providers")
            and operation.method.upper() in WRITES
        ):
            continue

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=f"{api.base_url}/api",
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
                timeout=30,
            )

        check()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) >= 9, checked
