"""Fuzzing every operation of every service's OpenAPI with schemathesis, against the services
running as processes on the real broker and database: no answer may be a 5xx, and every
answer must match the status codes, content types, headers and schemas the API declares.

Bounded for CI: FQ_FUZZ_EXAMPLES (default 50) valid and as many invalid requests per
operation, derandomized (the same requests every run), no shrinking; about two minutes.
Every operation is run and every failure reported together, so one bug does not hide the others."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi import checks

from kit.settings import SERVICE_PORTS
from tests.infra import AUTH, Broker, free_port, service_processes

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("FQ_FUZZ_EXAMPLES", "50"))

# What every answer is held to. Left out, and why:
# - positive_data_acceptance: a well-formed request may still be refused for what it means
#   (no such case, an illegal transition, a stale version): 404 and 409 are right answers.
# - ignored_auth, missing_required_header: the access matrix (test_access_matrix.py) checks
#   authentication and scopes route by route with real keys of every kind.
# - use_after_free, ensure_resource_availability: stateful checks over links the APIs do
#   not declare.
CHECKS = [
    not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# Requests that break the schema must be refused, except by intake: its native payloads are
# lenient on purpose, as the source systems are (an optional field sent as "" counts as
# absent; a number where a time is expected is read as a Unix time). See docs/security.md.
STRICT = {"router", "mediation", "notify"}
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck))


@pytest.fixture(scope="module")
def services(broker: Broker, database_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in SERVICE_PORTS}
    # Fuzzed subscriptions point at URLs that do not answer: one attempt, no SMS.
    env = {"FQ_DELIVERY_MAX_ATTEMPTS": "1", "FQ_SMS_ENABLED": "false"}
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=run_dir / "fuzz", env=env) as started:
        yield {name: s.url for name, s in started.items()}
        # The fuzzed PUT /v1/hotline/endpoint left the admin key an endpoint: the hotline
        # orders other tests post with that key and no callback_url would be called back
        # at a fuzzed URL.
        requests.delete(started["notify"].url + "/v1/hotline/endpoint", headers=AUTH,
                        timeout=10)


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode,
          session: requests.Session, strict: bool) -> None:
    held_to = [*CHECKS, checks.negative_data_rejection] if strict else CHECKS

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @SETTINGS
    def run(case: Case) -> None:
        case.call_and_validate(session=session, checks=held_to, timeout=30)

    run()


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_no_server_error_and_every_answer_matches_the_schema(
        services: dict[str, str], service: str) -> None:
    url = services[service]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    schema.config.update(base_url=url, headers=dict(AUTH))
    failures: list[str] = []
    operations = 0
    started = time.monotonic()
    with requests.Session() as session:
        session.headers.update(AUTH)
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                failures.append(f"the OpenAPI document is invalid: {result.err()}")
                continue
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, session, strict=service in STRICT)
                except hypothesis.errors.Unsatisfiable:
                    # Nothing to make invalid: no parameters, or only unconstrained strings.
                    assert mode is GenerationMode.NEGATIVE
                except (Exception, FailureGroup) as exc:  # noqa: BLE001 - report them all
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"\nfuzzed {operations} operations of {service} in "
          f"{time.monotonic() - started:.1f}s, {MAX_EXAMPLES} examples per mode")
    assert operations > 0
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)
