"""Related cases (关联): the other reports of a case's matter, found by the keys of
domain/matters.py (same person by keyed hash, same address, a place within 100 m, all
within 90 days), by the same external matter (the same external id from another channel or
order), and by merging (the cases merged into it, the case it was merged into)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from kit.auth import Principal
from kit.db import insert_for
from services.mediation import store
from services.mediation.domain.matters import (
    RELATED_WINDOW,
    SAME_PLACE_METRES,
    KeyKind,
    Relation,
    distance_metres,
    location_of,
    lookup_keys,
    match_keys,
)
from services.mediation.matter_tables import CASE_KEYS, K
from services.mediation.store import C, Case

_RELATION_OF_KIND = {KeyKind.PARTY: Relation.SAME_PARTY, KeyKind.ADDRESS: Relation.SAME_ADDRESS,
                     KeyKind.PLACE: Relation.SAME_PLACE}


def key_rows(case_id: str, report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The key rows of a report, to insert with the case."""
    return [{"kind": k.kind.value, "key": k.key, "case_id": case_id}
            for k in sorted(match_keys(report), key=lambda k: (k.kind, k.key))]


async def insert_keys(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert key rows, ignoring those already there (a report delivered again)."""
    if not rows:
        return
    await session.execute(insert_for(session, CASE_KEYS).values(list(rows)).on_conflict_do_nothing(
        index_elements=["kind", "key", "case_id"]))


async def delete_keys(session: AsyncSession, case_id: str) -> None:
    """A case's personal data erased: nothing may tie it to its person any more."""
    await session.execute(CASE_KEYS.delete().where(K.case_id == case_id))


@dataclass
class Related:
    case: Case
    relations: set[Relation] = field(default_factory=set)


async def related_cases(session: AsyncSession, case: Case, principal: Principal,
                        limit: int = 100) -> list[Related]:
    """The cases related to `case` that `principal` may see, each with why, newest first."""
    found: dict[str, set[Relation]] = {}

    def add(case_id: str, relation: Relation) -> None:
        if case_id != case.case_id:
            found.setdefault(case_id, set()).add(relation)

    keys = lookup_keys(case.report)
    if keys:
        pairs = sorted((k.kind.value, k.key) for k in keys)
        rows = (await session.execute(select(K.case_id, K.kind).where(
            tuple_(K.kind, K.key).in_(pairs), K.case_id != case.case_id))).all()
        for case_id, kind in rows:
            add(case_id, _RELATION_OF_KIND[KeyKind(kind)])
    same_external = (await session.execute(select(C.case_id).where(
        C.external_id == case.external_id, C.case_id != case.case_id))).scalars().all()
    for case_id in same_external:
        add(case_id, Relation.SAME_EXTERNAL_MATTER)
    merged = (await session.execute(select(C.case_id).where(
        C.merged_into == case.case_id))).scalars().all()
    for case_id in merged:
        add(case_id, Relation.MERGED)
    if case.merged_into:
        add(case.merged_into, Relation.MERGED)
    if not found:
        return []

    query = select(Case).where(C.case_id.in_(sorted(found)))
    visible = store.visible_to(principal)
    if visible is not None:
        query = query.where(visible)
    candidates = (await session.execute(query)).scalars().all()
    here = location_of(case.report)
    out = []
    for other in candidates:
        relations = found[other.case_id]
        if not _within_window(case.received_at, other.received_at):
            # Person and place relate reports within 90 days; one matter always.
            relations -= {Relation.SAME_PARTY, Relation.SAME_ADDRESS, Relation.SAME_PLACE}
        if Relation.SAME_PLACE in relations:
            there = location_of(other.report)
            if here is None or there is None or distance_metres(here, there) > SAME_PLACE_METRES:
                relations.discard(Relation.SAME_PLACE)  # a neighbouring cell, but too far
        if relations:
            out.append(Related(other, relations))
    out.sort(key=lambda r: (r.case.received_at, r.case.case_id), reverse=True)
    return out[:limit]


def _within_window(a: datetime, b: datetime) -> bool:
    return abs(a - b) <= RELATED_WINDOW

