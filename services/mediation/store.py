"""Mediation's tables (each case with its status, routing, milestones and time limits; its
history; the supervision emitted) and the queries on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    UniqueConstraint,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import false as sa_false
from sqlmodel import Field, SQLModel, col

from contracts.api_mediation import AuditAction, StatsDimension
from contracts.enums import Channel, Risk, SlaKind
from kit.auth import Principal
from kit.db import UtcDateTime, insert_for
from kit.privacy import scrub_values
from kit.tables import KitTables
from services.mediation.domain.figures import COUNT_NAMES, CaseCounts
from services.mediation.domain.lifecycle import OPEN_STATUSES
from services.mediation.domain.time_limits import RUNS_IN


class MediationBase(SQLModel):
    metadata = MetaData()


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime, nullable=nullable))


# Every column `count_cases` reads besides received_at: its groups (`dimension_column`), its
# counts (`_counts`), the stats' filters and a limited key's (`visible_to`). A period's stats
# are an index-only scan of `ix_mediation_cases_stats` on PostgreSQL: the period's range of
# the index, not the table (docs/performance.md, "Cost as the data grows"). A column read
# and not listed here sends the query back to the table (tests/unit/mediation/
# test_stats_index.py fails): a new column here needs a migration rebuilding the index.
STATS_COLUMNS = ("lead_department", "channel", "tier", "category", "jurisdiction_code",
                 "cooperating_departments", "routed_lead_department", "routed_lead_rule",
                 "owner", "merged_into", "closed_at", "mediated_at", "resolved_at",
                 "resolve_by", "satisfaction", "prior_related", "returns", "reassignments")


class Case(MediationBase, table=True):
    __tablename__ = "mediation_cases"
    __table_args__ = (
        Index("ix_mediation_cases_order", "received_at", "case_id"),
        # PostgreSQL only (the migration skips SQLite): received_at with the stats' columns
        # carried in the index's leaves.
        Index("ix_mediation_cases_stats", "received_at", postgresql_include=list(STATS_COLUMNS)),
        # The case list filters by one of these and pages newest first: with the order's
        # columns after the filter's, a page is read in order from the index, however many
        # years of cases match (bench/data_scale.py). They serve plain lookups by their first
        # column too (the gauges' open statuses, the stats' filters).
        *(Index(f"ix_mediation_cases_{column}_order", column, "received_at", "case_id")
          for column in ("status", "category", "risk", "tier", "lead_department")),
        # external_id first: the case list's `external_id=` filter comes without a channel.
        Index("ix_mediation_cases_external_channel", "external_id", "channel"),
        Index("ix_mediation_cases_supervision_due", "supervision_due_at"),
        # A map's bounding box: a range on longitude, then latitude within it.
        Index("ix_mediation_cases_lon_lat", "lon", "lat"),
    )

    case_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    status: str = Field(max_length=32)
    # Bumped by every transition; every transition is UPDATE ... WHERE version = :expected.
    version: int = 1
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    text: str | None = None
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    category: str | None = Field(default=None, max_length=32)
    risk: str | None = Field(default=None, max_length=16)
    tier: str | None = Field(default=None, max_length=16)
    lead_department: str | None = Field(default=None, max_length=32)
    cooperating_departments: list[str] = Field(default_factory=list,
                                               sa_column=Column(JSON, nullable=False))
    jurisdiction_code: str | None = Field(default=None, max_length=16, index=True)
    # Where the case is (the router's place: a grid, a village...), whatever tier works it;
    # codes nest by prefix, so a subtree is an index range (`subtree`).
    place_code: str | None = Field(default=None, max_length=16, index=True)
    # Its point on the map (domain/places.py): the report's coordinates, or its place's
    # centre; `position` says which ("reported" or "place").
    lat: float | None = None
    lon: float | None = None
    position: str | None = Field(default=None, max_length=16)
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    routing_round: int = 0
    prior_related: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Corrections: how often the lead department returned the case (退回), how often a
    # dispatcher assigned it by hand (改派 / 人工分派), and the router's first choice of lead
    # department and the rule that chose it (what the return and reassignment rates are about).
    returns: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    reassignments: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # How often the 12345 hotline chased the case (催办): each chaser also presses a notice.
    chasers: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    routed_lead_department: str | None = Field(default=None, max_length=32)
    routed_lead_rule: str | None = Field(default=None, max_length=64)
    # The router's readers disagreed or doubted (待研判): the decision stands meanwhile and
    # the case waits in the dispatchers' review queue until a person confirms or corrects it.
    review_flagged: bool = Field(default=False, index=True,
                                 sa_column_kwargs={"server_default": sa_false()})
    mediator: str | None = Field(default=None, max_length=128)
    referral: str | None = Field(default=None, max_length=16)
    satisfaction: int | None = None
    # Time limits of the current routing round: they count from limits_from.
    limits_from: datetime | None = _ts()
    # The acceptance limit's own start once a correction restarted it (else limits_from).
    accept_from: datetime | None = _ts()
    accept_by: datetime | None = _ts()
    resolve_by: datetime | None = _ts()
    # Who set each limit: policy, hotline (the 12345 order's, when earlier) or extension.
    accept_by_source: str | None = Field(default=None, max_length=16)
    resolve_by_source: str | None = Field(default=None, max_length=16)
    # The last extension request (延期申请) of a 12345 case and the hotline's answer: one
    # at a time, each also in the history.
    extension_id: str | None = Field(default=None, max_length=64)
    extension_status: str | None = Field(default=None, max_length=16)
    extension_requested_resolve_by: datetime | None = _ts()
    # Milestones (first time reached, except accepted/escalated: the latest).
    accepted_at: datetime | None = _ts()
    mediated_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    escalated_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    # Supervision: the last level emitted per limit this round, and when to look again.
    acceptance_supervised: str | None = Field(default=None, max_length=16)
    resolution_supervised: str | None = Field(default=None, max_length=16)
    supervision_due_at: datetime | None = _ts()
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    # When its personal data was erased (retention after archive, or a lawful request).
    personal_data_erased_at: datetime | None = _ts()
    # Repeat reports of one matter (关联合并, domain/matters.py): the main case this one was
    # merged into (it is closed as merged; new steps happen on the main case).
    merged_into: str | None = Field(default=None, max_length=64, index=True)
    # Leader ownership (领导包案): the leader who owns the case (the key's name and id), and
    # whether one is proposed (a red case, or two or more prior related cases) while nobody
    # owns it.
    owner: str | None = Field(default=None, max_length=128)
    owner_key_id: str | None = Field(default=None, max_length=32, index=True)
    owner_proposed: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})


class CaseHistory(MediationBase, table=True):
    __tablename__ = "mediation_case_history"
    __table_args__ = (Index("ix_mediation_case_history_case", "case_id", "at"),)

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    case_id: str = Field(max_length=64)
    version: int | None = None
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    reason: str | None = None
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # A progress note or an extension request or answer: not a change of status.
    activity: str | None = Field(default=None, max_length=32)


class SupervisionRecord(MediationBase, table=True):
    """One row per supervision event emitted; the unique constraint makes each level of each
    limit happen once per routing round, whatever the number of schedulers."""

    __tablename__ = "mediation_supervision"
    __table_args__ = (UniqueConstraint("case_id", "routing_round", "sla_kind", "level",
                                       name="uq_mediation_supervision_once"),)

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    case_id: str = Field(max_length=64)
    routing_round: int
    sla_kind: str = Field(max_length=16)
    level: str = Field(max_length=16)
    deadline: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    tier: str = Field(max_length=16)
    emitted_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class HotlineUpdateRecord(MediationBase, table=True):
    """An update the 12345 hotline sent about an order (补充, 催办, ...), by its own id: what
    it changed is in the case's history; this row answers the same update sent again. The
    content is kept as a hash per field (`fingerprint`), never in clear: enough to name the
    fields a different update under the same id changes."""

    __tablename__ = "mediation_hotline_updates"
    __table_args__ = (PrimaryKeyConstraint("case_id", "update_id",
                                           name="pk_mediation_hotline_updates"),)

    case_id: str = Field(max_length=64)
    update_id: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    fingerprint: dict[str, Any] = Field(default_factory=dict,
                                        sa_column=Column(JSON, nullable=False))
    # The answer given the first time (numbers in it masked, as in every answer).
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class AuditRecord(MediationBase, table=True):
    """Who read or changed which case: one row per case read, per list of cases and per
    transition, written with the read or in the transition's own transaction."""

    __tablename__ = "mediation_audit"
    __table_args__ = (Index("ix_mediation_audit_case", "case_id", "at"),
                      Index("ix_mediation_audit_key", "key_id", "at"))

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    key_id: str = Field(max_length=32)
    key_name: str = Field(max_length=128)
    action: str = Field(max_length=16)
    case_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


metadata = MediationBase.metadata
kit_tables = KitTables.define(metadata, "mediation")

# Core columns: typed SQL expressions, where SQLModel's attributes read as plain values.
C = Case.__table__.c  # type: ignore[attr-defined]
CASES: Table = Case.__table__  # type: ignore[attr-defined]
HISTORY: Table = CaseHistory.__table__  # type: ignore[attr-defined]
H = HISTORY.c
SV = SupervisionRecord.__table__.c  # type: ignore[attr-defined]
AU = AuditRecord.__table__.c  # type: ignore[attr-defined]

# Every Case field's default (a list factory called per case, below).
_CASE_DEFAULTS = {name: field.default for name, field in Case.model_fields.items()
                  if field.default_factory is None and not field.is_required()}
_CASE_LISTS = [name for name, field in Case.model_fields.items()
               if field.default_factory is list]


class NewCase:
    """A case first seen in a run of events, as a plain row: it has every Case field (the
    defaults where not given) and is inserted with the run's other new cases in one
    statement (`insert_cases`). Building a SQLModel `Case` for it (SQLAlchemy
    instrumentation and pydantic on every attribute) was a seventh of mediation's CPU."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(_CASE_DEFAULTS)
        for name in _CASE_LISTS:
            self.__dict__[name] = []
        self.__dict__.update(values)

    def sqlmodel_update(self, values: dict[str, Any]) -> None:
        """As Case.sqlmodel_update: the fields in `values` take those values."""
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only for names that are no Case field
        raise AttributeError(name)

    def row(self) -> dict[str, Any]:
        return {column.name: self.__dict__[column.name] for column in CASES.columns}


async def insert_cases(session: AsyncSession, cases: list[NewCase]) -> None:
    if cases:
        await session.execute(CASES.insert(), [case.row() for case in cases])


# --- writes -------------------------------------------------------------------------------

async def update_case(session: AsyncSession, case: Case, values: dict[str, Any]) -> bool:
    """UPDATE the case WHERE version = the version `case` was read at. False when someone
    changed it first: on PostgreSQL the loser waits for the winner's commit, then matches
    no row, so two writers can never both win. The loaded `case` follows the new values."""
    # Not synchronize_session="evaluate": that tests the criteria against every Case in the
    # session, and the supervisor updates each case of a 500-case batch in one session
    # (quadratic: a sixth of mediation's CPU under load). Only `case` can match.
    result = await session.execute(
        update(Case).where(col(Case.case_id) == case.case_id, col(Case.version) == case.version)
        .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for name, value in values.items():
        set_committed_value(case, name, value)
    return True


async def current_version(session: AsyncSession, case_id: str) -> int | None:
    return (await session.execute(select(C.version).where(C.case_id == case_id))).scalar()


async def lock_cases(session: AsyncSession, case_ids: list[str]) -> None:
    """Lock these cases' rows in case id order (PostgreSQL; SQLite has one writer at a
    time), as every writer of several cases does: one statement may lock its rows in any
    order, so a set-based update of cases is preceded by this (docs/reliability.md,
    "Deadlocks")."""
    if case_ids and session.get_bind().dialect.name == "postgresql":
        await session.execute(select(C.case_id).where(C.case_id.in_(case_ids))
                              .order_by(C.case_id).with_for_update())


# One UPDATE of many cases' supervision columns, each conditional on its version. The rows
# go as a few arrays (PostgreSQL) or one JSON array (SQLite), so the statement's text is the
# same whatever the batch: prepared and compiled once. (A VALUES list of bound parameters
# was compiled anew for every batch: two thirds of the supervisor's CPU.)
_SET_SUPERVISION = """
    SET acceptance_supervised = v.acceptance_supervised,
        resolution_supervised = v.resolution_supervised,
        supervision_due_at = v.supervision_due_at"""
_UPDATE_SUPERVISION_PG = text(f"""
    UPDATE {CASES.name} AS c {_SET_SUPERVISION}
    FROM unnest(CAST(:case_ids AS VARCHAR[]), CAST(:versions AS INTEGER[]),
                CAST(:acceptance AS VARCHAR[]), CAST(:resolution AS VARCHAR[]),
                CAST(:due AS TIMESTAMPTZ[]))
         AS v(case_id, version, acceptance_supervised, resolution_supervised,
              supervision_due_at)
    WHERE c.case_id = v.case_id AND c.version = v.version
    RETURNING c.case_id""")
_UPDATE_SUPERVISION_SQLITE = text(f"""
    WITH v AS (SELECT json_extract(value, '$[0]') AS case_id,
                      json_extract(value, '$[1]') AS version,
                      json_extract(value, '$[2]') AS acceptance_supervised,
                      json_extract(value, '$[3]') AS resolution_supervised,
                      json_extract(value, '$[4]') AS supervision_due_at
               FROM json_each(:rows))
    UPDATE {CASES.name} {_SET_SUPERVISION}
    FROM v WHERE {CASES.name}.case_id = v.case_id AND {CASES.name}.version = v.version
    RETURNING case_id""")


async def update_supervision(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """One UPDATE of many cases' supervision columns (`acceptance_supervised`,
    `resolution_supervised`, `supervision_due_at`), each conditional on the `version` its
    row was read at, as `update_case` is (the version is not bumped). Returns the ids of
    the cases updated: a case changed meanwhile (a staff step) is not, and keeps its
    values. Lock the rows first (`lock_cases`)."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        result = await session.execute(_UPDATE_SUPERVISION_PG, {
            "case_ids": [row["case_id"] for row in rows],
            "versions": [row["version"] for row in rows],
            "acceptance": [row["acceptance_supervised"] for row in rows],
            "resolution": [row["resolution_supervised"] for row in rows],
            "due": [row["supervision_due_at"] for row in rows]})
    else:
        # The text the column holds ('2026-12-07 12:00:00.000000' in UTC), so comparisons
        # with the due scan's bound times hold.
        stored = C.supervision_due_at.type.dialect_impl(dialect).bind_processor(dialect)
        assert stored is not None
        result = await session.execute(_UPDATE_SUPERVISION_SQLITE, {"rows": orjson.dumps([
            (row["case_id"], row["version"], row["acceptance_supervised"],
             row["resolution_supervised"], stored(row["supervision_due_at"]))
            for row in rows]).decode()})
    return set(result.scalars())


async def record_supervision_new(session: AsyncSession, rows: list[dict[str, Any]]
                                 ) -> set[tuple[str, int, str, str]]:
    """Insert supervision records unless their level was already emitted (the unique
    constraint; ON CONFLICT DO NOTHING): one statement for the lot. Returns the
    (case_id, routing_round, sla_kind, level) of the rows actually inserted, whose events
    are to be published; the others another scheduler emitted first."""
    if not rows:
        return set()
    statement = insert_for(session, SupervisionRecord.__table__).on_conflict_do_nothing(  # type: ignore[attr-defined]
        index_elements=["case_id", "routing_round", "sla_kind", "level"]).returning(
        SV.case_id, SV.routing_round, SV.sla_kind, SV.level)
    result = await session.execute(statement, rows)
    return {(r.case_id, r.routing_round, r.sla_kind, r.level) for r in result}


def audit(principal: Principal, action: AuditAction, case_id: str | None = None,
          **detail: Any) -> AuditRecord:
    """The audit row of what `principal` did; add it to the session that does it. Its detail
    is scrubbed: staff search for phone numbers (`text=`, `external_id=`), and the audit log
    is read by more people than the cases."""
    return AuditRecord(at=datetime.now(UTC), key_id=principal.key_id[:32],
                       key_name=principal.name[:128], action=action.value, case_id=case_id,
                       detail=scrub_values(detail))


# --- reads ---------------------------------------------------------------------------------

def visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """The cases a limited key may see: its departments' (lead or cooperating), within its
    jurisdictions, from its channels."""
    conditions: list[ColumnElement[bool]] = []
    if principal.departments:
        conditions.append(or_(*(involves_department(d) for d in sorted(principal.departments))))
    if principal.jurisdictions:
        conditions.append(within_jurisdictions(principal.jurisdictions))
    if principal.channels:
        conditions.append(C.channel.in_(sorted(principal.channels)))
    return and_(*conditions) if conditions else None


def involves_department(department: str) -> ColumnElement[bool]:
    """Lead or cooperating. Codes are plain words, so the JSON text holds them as "code"."""
    return or_(C.lead_department == department,
               cast(C.cooperating_departments, String).contains(f'"{department}"',
                                                                autoescape=True))


def within_jurisdictions(codes: frozenset[str] | set[str]) -> ColumnElement[bool]:
    """Division codes nest by prefix: a town's code starts with its county's."""
    return or_(*(subtree(C.jurisdiction_code, code) for code in sorted(codes)))


# Division and grid codes have at most 15 digits; the columns hold 16.
_LONGEST_CODE = 16


def subtree(column: Any, code: str) -> ColumnElement[bool]:
    """The node `code` and every node below it, as an index range: among digit strings,
    those starting with `code` are exactly those from `code` to `code` followed by nines
    (LIKE 'code%' is a scan on PostgreSQL outside the C collation, and on SQLite)."""
    if not (code.isascii() and code.isdigit()):
        return column.startswith(code, autoescape=True)
    last = code + "9" * max(0, _LONGEST_CODE - len(code))
    return and_(column >= code, column <= last)


def in_box(min_lon: float, min_lat: float, max_lon: float, max_lat: float
           ) -> ColumnElement[bool]:
    """Cases whose point lies in the box (edges included)."""
    return and_(C.lon >= min_lon, C.lon <= max_lon, C.lat >= min_lat, C.lat <= max_lat)


def overdue(now: datetime) -> ColumnElement[bool]:
    """The SQL form of time_limits.is_overdue: a running limit past its deadline."""
    return or_(and_(C.status.in_(sorted(RUNS_IN[SlaKind.ACCEPTANCE])), C.accept_by < now),
               and_(C.status.in_(sorted(RUNS_IN[SlaKind.RESOLUTION])), C.resolve_by < now))


def supervised() -> ColumnElement[bool]:
    """A supervision level was emitted in the current routing round (a new round clears them)."""
    return or_(C.acceptance_supervised.is_not(None), C.resolution_supervised.is_not(None))


# What the supervisor reads of a case: its clocks and what its events say.
CaseRow = Row[*tuple[Any, ...]]
SUPERVISION_COLUMNS = (C.case_id, C.version, C.status, C.received_at, C.limits_from,
                       C.accept_from, C.accept_by, C.resolve_by, C.acceptance_supervised,
                       C.resolution_supervised, C.routing_round, C.tier, C.lead_department,
                       C.accept_by_source, C.resolve_by_source)


async def due_for_supervision(session: AsyncSession, now: datetime, limit: int
                              ) -> list[CaseRow]:
    """Cases whose next supervision time has come, the earliest `limit` by the indexed
    supervision_due_at, returned in case id order: the supervisor updates (locks) them in
    that order in one transaction, as the consumers' runs and a merge lock theirs, so two
    writers of several cases never wait on each other in a circle (a deadlock). Rows of
    `SUPERVISION_COLUMNS`, not `Case` objects (the report and decision are not needed)."""
    due = list((await session.execute(
        select(*SUPERVISION_COLUMNS).where(C.supervision_due_at <= now)
        .order_by(C.supervision_due_at).limit(limit))).all())
    return sorted(due, key=lambda row: str(row.case_id))


async def case_gauges(session: AsyncSession, now: datetime
                      ) -> tuple[list[tuple[str | None, str | None, int, int]], int]:
    """Open and overdue cases by (tier, lead department), and red cases past their
    acceptance limit without being accepted."""
    late = overdue(now)
    by_group = (await session.execute(
        select(C.tier, C.lead_department, func.count(),
               func.sum(case((late, 1), else_=0)))
        .where(C.status.in_(sorted(OPEN_STATUSES)))
        .group_by(C.tier, C.lead_department))).all()
    red = (await session.execute(select(func.count()).where(
        C.risk == Risk.RED.value, C.status.in_(sorted(RUNS_IN[SlaKind.ACCEPTANCE])),
        C.accept_by < now))).scalar_one()
    return [(t, d, int(n), int(o or 0)) for t, d, n, o in by_group], int(red)


# --- statistics ----------------------------------------------------------------------------

# Reporting periods are days, weeks (from Monday) and months in China Standard Time.
_PERIOD_PG = {StatsDimension.DAY: ("day", "YYYY-MM-DD"), StatsDimension.WEEK:
              ("week", "YYYY-MM-DD"), StatsDimension.MONTH: ("month", "YYYY-MM")}
_PERIOD_SQLITE = {StatsDimension.DAY: ("%Y-%m-%d",), StatsDimension.WEEK:
                  ("%Y-%m-%d", "weekday 0", "-6 days"), StatsDimension.MONTH: ("%Y-%m",)}
JURISDICTION_CODE_LENGTH = {"county": 6, "town": 9, "village": 12}


def _literal(value: str | int) -> Any:
    # Constants inline, not as bind parameters: PostgreSQL must see the SELECT and GROUP BY
    # expressions as the same expression.
    return literal_column(f"'{value}'" if isinstance(value, str) else str(value))


def _period(dimension: StatsDimension, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        unit, shown = _PERIOD_PG[dimension]
        local = func.timezone(_literal("Asia/Shanghai"), C.received_at)
        return func.to_char(func.date_trunc(_literal(unit), local), _literal(shown))
    if dialect == "sqlite":
        shown, *modifiers = _PERIOD_SQLITE[dimension]
        return func.strftime(_literal(shown), C.received_at, _literal("+8 hours"),
                             *(_literal(m) for m in modifiers))
    raise NotImplementedError(f"periods on {dialect}")


def dimension_column(dimension: StatsDimension, dialect: str,
                     jurisdiction_level: str | None = None) -> ColumnElement[Any]:
    if dimension in _PERIOD_PG:
        return _period(dimension, dialect)
    if dimension is StatsDimension.JURISDICTION and jurisdiction_level:
        return func.substr(C.jurisdiction_code, _literal(1),
                           _literal(JURISDICTION_CODE_LENGTH[jurisdiction_level]))
    return {StatsDimension.CHANNEL: C.channel, StatsDimension.TIER: C.tier,
            StatsDimension.DEPARTMENT: C.lead_department, StatsDimension.CATEGORY: C.category,
            StatsDimension.JURISDICTION: C.jurisdiction_code,
            StatsDimension.ROUTED_DEPARTMENT: C.routed_lead_department,
            StatsDimension.LEAD_RULE: C.routed_lead_rule,
            StatsDimension.OWNER: C.owner}[dimension]


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _counts() -> list[ColumnElement[Any]]:
    # A report merged into another case (合并) is part of that case's matter: counted in
    # `reports` and `merged` only, so a matter counts once everywhere else.
    matter = C.merged_into.is_(None)
    closed = and_(matter, C.closed_at.is_not(None))
    mediated = and_(matter, C.mediated_at.is_not(None))
    court = and_(matter, C.channel == Channel.COURT.value)
    columns = {
        "received": _count_if(matter),
        "mediated": _count_if(mediated),
        "resolved": _count_if(and_(matter, C.resolved_at.is_not(None))),
        "closed": _count_if(closed),
        "closed_resolved": _count_if(and_(closed, C.resolved_at.is_not(None))),
        "closed_on_time": _count_if(and_(closed, or_(C.resolve_by.is_(None),
                                                     C.closed_at <= C.resolve_by))),
        "rated": func.count(C.satisfaction),
        "satisfaction_sum": func.sum(C.satisfaction),
        "satisfied": _count_if(C.satisfaction >= 4),
        "court_received": _count_if(court),
        "court_mediated": _count_if(and_(court, mediated)),
        "repeats": _count_if(and_(matter, C.prior_related > 0)),
        "returned": _count_if(and_(matter, C.returns > 0)),
        "reassigned": _count_if(and_(matter, C.reassignments > 0)),
        "reports": func.count(),
        "merged": _count_if(~matter),
    }
    assert tuple(columns) == COUNT_NAMES
    return [column.label(name) for name, column in columns.items()]


def stats_query(dimensions: list[StatsDimension], where: list[ColumnElement[bool]],
                dialect: str, jurisdiction_level: str | None = None) -> Select[Any]:
    """The stats' one aggregate: the groups, then every count."""
    groups = [dimension_column(d, dialect, jurisdiction_level).label(f"g_{d.value}")
              for d in dimensions]
    query = select(*groups, *_counts()).where(*where)
    if groups:
        query = query.group_by(*groups).order_by(*groups)
    return query


async def count_cases(session: AsyncSession, dimensions: list[StatsDimension],
                      where: list[ColumnElement[bool]], jurisdiction_level: str | None = None
                      ) -> list[tuple[dict[str, str | None], CaseCounts]]:
    """The counts per group (one row, with an empty group, when no dimensions are asked),
    aggregated by the database."""
    query = stats_query(dimensions, where, session.get_bind().dialect.name,
                        jurisdiction_level)
    out = []
    for row in (await session.execute(query)).mappings():
        group = {d.value: row[f"g_{d.value}"] for d in dimensions}
        counts = CaseCounts(**{name: int(row[name] or 0) for name in COUNT_NAMES})
        out.append((group, counts))
    return out


# The tables of repeat reports and supervision notices share this metadata (imported last:
# they import MediationBase from here).
from services.mediation import matter_tables as _matter_tables  # noqa: E402, F401
