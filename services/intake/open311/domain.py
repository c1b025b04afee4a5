"""Open311 GeoReport v2 in fengqiao's words: one service per dispute category of DOMAIN.md,
a request becomes a case, and the case's lifecycle becomes the request's open/closed
status. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.api_intake import Open311Service
from contracts.channels import Open311Request
from contracts.enums import Category, Channel, PartyRole, Status
from contracts.events import CaseReported, GeoPoint
from kit.privacy import scrub
from services.intake.domain import ChannelAdapter, Receipt, person_ref

MAX_RESULTS = 1000
SEARCH_WINDOW = timedelta(days=90)
OPEN, CLOSED = "open", "closed"
SERVICE_NOTICE = ("已受理，将在24小时内分派到承办部门。"
                  "Received; it will be assigned to a department within 24 hours.")
GROUP = "矛盾纠纷 Disputes"


@dataclass(frozen=True)
class Service:
    """An Open311 service: one dispute category, named in Chinese and English."""

    category: Category
    zh: str
    en: str
    signals: tuple[str, ...]

    @property
    def code(self) -> str:
        return self.category.value

    @property
    def name(self) -> str:
        return f"{self.zh} {self.en}"

    def listing(self) -> Open311Service:
        typical = "、".join(self.signals)
        return Open311Service(
            service_code=self.code, service_name=self.name,
            description=f"{self.zh}（{typical}）。{self.en}." if typical
            else f"{self.zh}：以上类别都不适用。{self.en}: none of the other services applies.",
            metadata=False, type="realtime", keywords=",".join(self.signals), group=GROUP)


# DOMAIN.md's categories, names and typical signals, in its order.
SERVICES: dict[str, Service] = {s.code: s for s in (
    Service(Category.MARRIAGE_FAMILY, "婚恋家庭", "Marriage and family",
            ("离婚", "夫妻", "家暴", "赡养", "抚养", "彩礼", "婆媳")),
    Service(Category.NEIGHBOR, "邻里纠纷", "Neighbour disputes",
            ("邻居", "噪音扰民", "漏水", "宅基地界", "占道", "高空抛物")),
    Service(Category.LAND_RESOURCE, "土地山林水事", "Land, forest and water rights",
            ("土地承包", "地界", "林地", "灌溉用水", "水渠")),
    Service(Category.LAND_ACQUISITION, "征地拆迁", "Land acquisition and demolition",
            ("征地", "拆迁", "补偿款", "安置")),
    Service(Category.LABOR, "劳动争议 / 欠薪", "Labour disputes and unpaid wages",
            ("拖欠工资", "讨薪", "工伤", "劳动合同", "辞退")),
    Service(Category.CONSTRUCTION, "工程建设", "Construction projects",
            ("工程款", "包工头", "项目施工")),
    Service(Category.DEBT_FINANCE, "金融借贷 / 民间债务", "Loans and debts",
            ("借款", "欠款不还", "民间借贷", "担保")),
    Service(Category.CONSUMER_COMMERCIAL, "消费 / 商事", "Consumer and commercial disputes",
            ("退款", "质量问题", "预付卡", "合同违约")),
    Service(Category.TRAFFIC_ACCIDENT, "交通事故", "Traffic accidents",
            ("车祸", "刮擦", "交通事故赔偿")),
    Service(Category.MEDICAL, "医疗纠纷", "Medical disputes", ("医疗事故", "误诊", "医院")),
    Service(Category.PROPERTY_MANAGEMENT, "物业纠纷", "Property management",
            ("物业费", "物业公司", "电梯", "停车位")),
    Service(Category.CAMPUS, "校园纠纷", "School disputes", ("校园欺凌", "学生", "学校")),
    Service(Category.TOURISM, "旅游纠纷", "Tourism disputes", ("景区", "导游", "旅行社")),
    Service(Category.ENVIRONMENT, "环境污染", "Environmental pollution",
            ("污染", "排污", "异味", "粉尘")),
    Service(Category.OTHER, "其他", "Other disputes", ()),
)}


def _is_chinese(name: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in name)


def full_name(first: str | None, last: str | None) -> str | None:
    """张 + 三 → 张三 (family name first, no space); John + Smith → John Smith."""
    parts = [p for p in (first, last) if p]
    if not parts:
        return None
    if first and last and _is_chinese(first + last):
        return last + first
    return " ".join(parts)


def open311_to_case(request: Open311Request, receipt: Receipt) -> CaseReported:
    service = SERVICES[request.service_code]
    name = full_name(request.first_name, request.last_name)
    reporter = None
    if name or request.phone:
        reporter = person_ref(receipt.hash_secret, role=PartyRole.REPORTER, name=name,
                              phone=request.phone)
    location = (GeoPoint(lat=request.lat, lon=request.long)
                if request.lat is not None and request.long is not None else None)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.OPEN311, external_id=receipt.external_id,
        received_at=receipt.received_at, text=scrub(request.description),
        # The category's Chinese name: the router reads it as the channel's classification.
        channel_category=service.zh,
        address=scrub(request.address_string) if request.address_string else None,
        location=location, reporter=reporter,
        # The county's, a town's or a village's code (checked against the tree before
        # filing): to the router a code is authoritative, the address only narrows it.
        region_code=request.jurisdiction_id)


# Open311 requests carry no id of their own: service_request_id is the case id.
OPEN311_ADAPTER = ChannelAdapter(Channel.OPEN311, Open311Request, "service_request_id",
                                 open311_to_case, generates_ids=True)


# --- status from the case lifecycle ---------------------------------------------------------

CLOSED_STATUSES = frozenset({Status.CLOSED, Status.VISITED, Status.RATED, Status.ARCHIVED})

STATUS_NOTES: dict[Status, str] = {
    Status.REPORTED: "已登记 Registered",
    Status.ROUTED: "已分派 Assigned to a department",
    Status.ACCEPTED: "已受理 Accepted",
    Status.IN_MEDIATION: "调解中 In mediation",
    Status.RESOLVED: "调解成功 Resolved by agreement",
    Status.FAILED: "调解未成功 Mediation failed",
    Status.ESCALATED: "已提交上级处理 Escalated to the tier above",
    Status.REFERRED: "已转诉讼、仲裁或行政处理 Referred to litigation, arbitration or an authority",
    Status.WITHDRAWN: "已撤回 Withdrawn",
    Status.RETURNED: "已退回，重新分派中 Returned by the department, being assigned again",
    Status.AWAITING_DISPATCH: "待人工分派 Waiting for a dispatcher",
    Status.RETURNED_TO_SOURCE: "已退回来源平台 Returned to the platform it came from",
    Status.CLOSED: "已办结 Closed",
    Status.VISITED: "已回访 Followed up",
    Status.RATED: "已评价 Rated",
    Status.ARCHIVED: "已归档 Archived",
    Status.MERGED: "已与同一事项的其他来件合并办理 Merged with other reports of the same matter",
}


def open311_status(status: Status) -> str:
    return CLOSED if status in CLOSED_STATUSES else OPEN


# --- GET requests.json ----------------------------------------------------------------------

@dataclass(frozen=True)
class RequestQuery:
    """What GET requests.json asks for. With ids, every other filter is ignored (the spec)."""

    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None


class QueryError(ValueError):
    """A query the spec does not allow; its args are the problems, one per argument."""


def is_plausible_id(value: str) -> bool:
    """Could this be a request id or a token? What cannot be one is simply not found."""
    return 0 < len(value) <= 64 and value.isprintable()


def _comma_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


def _w3c_datetime(name: str, value: str | None, problems: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        problems.append(f"{name} must be a W3C datetime with offset, e.g. "
                        "2026-11-01T00:00:00+08:00 or 2026-11-01T00:00:00Z")
        return None
    if not 1900 <= parsed.year < 2100:
        problems.append(f"{name} is outside the years 1900-2099")
        return None
    return parsed


def parse_query(params: Mapping[str, str], now: datetime) -> RequestQuery:
    """The query of GET requests.json, with the default 90-day window; raises QueryError."""
    ids = _comma_list(params.get("service_request_id"))
    if ids:
        if len(ids) > MAX_RESULTS:
            raise QueryError(f"at most {MAX_RESULTS} service_request_id values at once")
        if not all(map(is_plausible_id, ids)):
            raise QueryError("service_request_id takes request ids, comma separated")
        return RequestQuery(ids=ids)
    problems: list[str] = []
    codes = _comma_list(params.get("service_code"))
    unknown = [c for c in codes if c not in SERVICES]
    if unknown:
        problems.append(f"unknown service_code: {', '.join(unknown)}; see services.json")
    statuses = _comma_list(params.get("status"))
    if set(statuses) - {OPEN, CLOSED}:
        problems.append("status must be open, closed or both (comma separated)")
    start = _w3c_datetime("start_date", params.get("start_date"), problems)
    end = _w3c_datetime("end_date", params.get("end_date"), problems)
    if problems:
        raise QueryError(*problems)
    start, end = search_window(start, end, now)
    return RequestQuery(service_codes=codes, statuses=statuses, start=start, end=end)


def search_window(start: datetime | None, end: datetime | None, now: datetime
                  ) -> tuple[datetime, datetime]:
    """The spec's window: at most 90 days; the most recent 90 days when neither end is given."""
    if start is None and end is None:
        return now - SEARCH_WINDOW, now
    if start is None:
        assert end is not None
        return end - SEARCH_WINDOW, end
    if end is None:
        return start, start + SEARCH_WINDOW
    if end < start:
        raise QueryError("end_date is before start_date")
    if end - start > SEARCH_WINDOW:
        raise QueryError("start_date and end_date may not span more than 90 days")
    return start, end
