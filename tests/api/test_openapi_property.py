"""The whole OpenAPI spec, checked by schemathesis against the running API (on the real
stack): for generated requests to every operation, no server error, and every answer's
status code, content type and body are the ones the spec documents. A bounded number of
examples per operation keeps it well under a minute.

(schemathesis' pytest plugin does not run under this pytest, so the operations are walked
here, each with hypothesis, in a worker thread: the calls block.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ApiServer

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = 6


def check_every_operation(base_url: str, key: str) -> tuple[int, list[str]]:
    """(operations checked, failures as "METHOD path: error")."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                             database=None, phases=[hypothesis.Phase.generate],
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"},
                                   checks=CHECKS, timeout=30)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: "
                            f"{str(exc)[:2000]}")
        checked += 1
    return checked, failures


async def test_every_operation_keeps_to_the_spec(api: ApiServer) -> None:
    checked, failures = await asyncio.to_thread(check_every_operation, api.base_url,
                                                api.keys["admin"])
    assert checked >= 20
    assert failures == []
