"""The fault-injection suite in its short form for CI: 600 cases through the four services
(two routers, two mediations and two notifies, which share the sending) while every kind of
fault strikes at least once: SIGKILL of each service, a broker restart (Tansu forgets
everything), a PostgreSQL restart, and a rebalance of each doubled consumer group (for notify
also a hand-over of the killed one's receivers to the other's sender). Nothing may be lost, doubled or reordered.
The full run (`make chaos`) is the same with 10,000 cases and 20 faults."""

from __future__ import annotations

import pytest

from chaos.cluster import can_restart_postgresql
from chaos.faults import KINDS, POSTGRES_RESTART, SQLITE_KINDS
from chaos.run import Options, Outcome, run
from tests.infra import IN_CI, TEST_BACKEND, postgres_available

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]


async def test_no_case_is_lost_doubled_or_reordered_under_every_kind_of_fault(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    if TEST_BACKEND == "sqlite":
        # The embedded default: a SQLite file per service, one process each, as `make run`.
        outcome = await run(Options(cases=400, faults=len(SQLITE_KINDS), rate=12.0, seed=7,
                                    max_postgres_restarts=0, settle_seconds=90.0,
                                    kinds=SQLITE_KINDS, sqlite=True,
                                    var=tmp_path_factory.mktemp("chaos")))
        print("\n" + outcome.table())
        assert set(outcome.injected) == set(SQLITE_KINDS)
        assert_nothing_lost(outcome, 400)
        return
    if not postgres_available():
        if IN_CI:
            pytest.fail("the chaos suite needs PostgreSQL under CI")
        pytest.skip("the chaos suite needs PostgreSQL (it restarts it, among others)")
    if IN_CI and not can_restart_postgresql():
        pytest.fail("the chaos suite must restart PostgreSQL under CI, and cannot here")
    # Once: the machine's PostgreSQL may be shared with other tests.
    restarts = 1 if can_restart_postgresql() else 0
    kinds = KINDS if restarts else tuple(k for k in KINDS if k != POSTGRES_RESTART)

    outcome = await run(Options(cases=600, faults=len(kinds), rate=12.0, seed=7,
                                max_postgres_restarts=restarts, settle_seconds=90.0,
                                kinds=kinds, var=tmp_path_factory.mktemp("chaos")))
    print("\n" + outcome.table())

    assert set(outcome.injected) == set(kinds), "every kind of fault struck at least once"
    assert_nothing_lost(outcome, 600)


def assert_nothing_lost(outcome: Outcome, cases: int) -> None:
    assert outcome.accepted == outcome.posted == cases
    # Clients retry through outages; intake answers 503 while its database restarts, never 500.
    assert not any(answer.startswith("5") and answer != "503" for answer in outcome.answers), \
        outcome.answers
    assert outcome.settled, "the platform did not settle after the faults"
    findings = outcome.findings
    assert findings is not None
    assert (findings.lost, findings.doubled, findings.out_of_order) == (0, 0, 0), \
        "\n".join(findings.examples())
    assert not any(findings.dead_letters.values()), findings.dead_letters
    assert outcome.ok
