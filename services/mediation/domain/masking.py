"""Phone and id numbers that staff type into a step's free text (who they are, why, notes,
agreements) are masked before the step is stored, published or answered: intake is the one
place such numbers are kept in clear, and case events and notifications carry masks only."""

from __future__ import annotations

from contracts.api_mediation import TransitionRequest
from kit.privacy import scrub

FREE_TEXT = ("mediator", "notes", "agreement", "failure_reason", "visit_notes")


def masked(request: TransitionRequest) -> TransitionRequest:
    """The request with every number in its free text masked (138****8000)."""
    data = request.data
    texts = {name: scrub(value) for name in FREE_TEXT
             if isinstance(value := getattr(data, name), str)}
    return request.model_copy(update={
        "actor": scrub(request.actor),
        "reason": scrub(request.reason) if request.reason else request.reason,
        "data": data.model_copy(update=texts)})
