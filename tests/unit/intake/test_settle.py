"""How submitted reports meet the ones already received: accepted, duplicate or conflict."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.enums import Channel
from contracts.events import CaseReported
from services.intake.domain import Outcome, Prepared, Stored, firsts, settle

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def report(case_id: str, external_id: str, fingerprint: str) -> Prepared:
    case = CaseReported(case_id=case_id, channel=Channel.GRID, external_id=external_id,
                        received_at=NOW, text="x")
    return Prepared(external_id=external_id, fingerprint=fingerprint, case=case, native={})


def test_only_the_first_report_of_each_id_is_inserted_in_id_order() -> None:
    batch = [report("c1", "B", "f1"), report("c2", "A", "f2"), report("c3", "B", "f1")]
    assert [r.case_id for r in firsts(batch)] == ["c2", "c1"]


def test_a_new_id_is_accepted_and_its_repeats_in_the_batch_are_duplicates_or_conflicts() -> None:
    batch = [report("c1", "A", "f1"), report("c2", "A", "f1"), report("c3", "A", "f9")]
    outcomes = settle(batch, inserted={"c1"}, stored={"A": Stored("c1", "f1")})
    assert [(o.outcome, o.case_id) for o in outcomes] == [
        (Outcome.ACCEPTED, "c1"), (Outcome.DUPLICATE, "c1"), (Outcome.CONFLICT, "c1")]


def test_an_id_received_before_answers_with_the_first_case() -> None:
    batch = [report("c1", "A", "f1"), report("c2", "B", "f2")]
    outcomes = settle(batch, inserted=set(),
                      stored={"A": Stored("old-a", "f1"), "B": Stored("old-b", "other")})
    assert [(o.outcome, o.case_id) for o in outcomes] == [
        (Outcome.DUPLICATE, "old-a"), (Outcome.CONFLICT, "old-b")]


def test_a_repeat_that_matches_the_stored_report_is_a_duplicate_even_after_a_conflict() -> None:
    batch = [report("c1", "A", "changed"), report("c2", "A", "f1")]
    outcomes = settle(batch, inserted=set(), stored={"A": Stored("old", "f1")})
    assert [o.outcome for o in outcomes] == [Outcome.CONFLICT, Outcome.DUPLICATE]
