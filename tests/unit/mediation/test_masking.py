"""Numbers staff type into a step are masked; everything else is kept as typed."""

from __future__ import annotations

from contracts.api_mediation import TransitionRequest
from contracts.enums import Status
from services.mediation.domain.masking import masked


def test_numbers_in_every_free_text_of_a_step_are_masked() -> None:
    request = TransitionRequest(
        to_status=Status.RESOLVED, actor="王调解员 13812345678", expected_version=4,
        reason="当事人来电 13912345678",
        data={"agreement": "双方和解，联系人身份证110105199001011237",
              "agreement_amount": 800, "notes": "座机 0571-87654321", "mediator": "王"})
    step = masked(request)
    assert step.actor == "王调解员 138****5678"
    assert step.reason == "当事人来电 139****5678"
    assert step.data.agreement == "双方和解，联系人身份证110105********1237"
    assert step.data.notes == "座机 0571-****4321"
    assert (step.data.mediator, step.data.agreement_amount) == ("王", 800)
    assert (step.to_status, step.expected_version) == (Status.RESOLVED, 4)


def test_a_step_without_numbers_or_text_is_unchanged() -> None:
    request = TransitionRequest(to_status=Status.ACCEPTED, actor="李", expected_version=2)
    assert masked(request) == request
