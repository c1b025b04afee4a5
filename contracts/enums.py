"""The enums of DOMAIN.md, with exactly its codes. Chinese labels travel with each code."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    HOTLINE_12345 = "hotline_12345"
    GRID = "grid"
    POLICE = "police"
    COURT = "court"
    PETITION = "petition"
    WALK_IN = "walk_in"
    OPEN311 = "open311"


class Category(StrEnum):
    MARRIAGE_FAMILY = "marriage_family"
    NEIGHBOR = "neighbor"
    LAND_RESOURCE = "land_resource"
    LAND_ACQUISITION = "land_acquisition"
    LABOR = "labor"
    CONSTRUCTION = "construction"
    DEBT_FINANCE = "debt_finance"
    CONSUMER_COMMERCIAL = "consumer_commercial"
    TRAFFIC_ACCIDENT = "traffic_accident"
    MEDICAL = "medical"
    PROPERTY_MANAGEMENT = "property_management"
    CAMPUS = "campus"
    TOURISM = "tourism"
    ENVIRONMENT = "environment"
    OTHER = "other"


class Department(StrEnum):
    VILLAGE_MEDIATION = "village_mediation"
    JUDICIAL_OFFICE = "judicial_office"
    POLICE_STATION = "police_station"
    TRAFFIC_POLICE = "traffic_police"
    COURT = "court"
    PETITION_OFFICE = "petition_office"
    HR_SOCIAL_SECURITY = "hr_social_security"
    WOMENS_FEDERATION = "womens_federation"
    CIVIL_AFFAIRS = "civil_affairs"
    NATURAL_RESOURCES = "natural_resources"
    AGRICULTURE_RURAL = "agriculture_rural"
    HOUSING_CONSTRUCTION = "housing_construction"
    HEALTH = "health"
    MARKET_REGULATION = "market_regulation"
    EDUCATION = "education"
    CULTURE_TOURISM = "culture_tourism"
    ECOLOGY_ENVIRONMENT = "ecology_environment"


class Tier(StrEnum):
    VILLAGE = "village"
    TOWN = "town"
    COUNTY = "county"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)

    def above(self) -> Tier:
        """The next tier up; county is the top and stays county."""
        return _TIER_ORDER[min(self.rank + 1, len(_TIER_ORDER) - 1)]


_TIER_ORDER = [Tier.VILLAGE, Tier.TOWN, Tier.COUNTY]


class Risk(StrEnum):
    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    VERY_URGENT = "very_urgent"


class Status(StrEnum):
    REPORTED = "reported"
    ROUTED = "routed"
    ACCEPTED = "accepted"
    IN_MEDIATION = "in_mediation"
    RESOLVED = "resolved"
    FAILED = "failed"
    ESCALATED = "escalated"
    REFERRED = "referred"
    WITHDRAWN = "withdrawn"
    # Corrections of the routing: returned by its lead department (退回), waiting for a
    # dispatcher (人工分派), sent back to the 12345 hotline it came from (退单).
    RETURNED = "returned"
    AWAITING_DISPATCH = "awaiting_dispatch"
    RETURNED_TO_SOURCE = "returned_to_source"
    CLOSED = "closed"
    VISITED = "visited"
    RATED = "rated"
    ARCHIVED = "archived"
    # Merged (合并) by a dispatcher into the main case of its matter: no step of its own
    # until the main case closes (then it closes too, with the main case's outcome) or a
    # dispatcher unmerges it (back to the status it had).
    MERGED = "merged"


class CorrectionKind(StrEnum):
    """How a routing decision came to be corrected: the lead department returned the case
    (退回) and the router routed it again, or a dispatcher reassigned it (改派) or assigned a
    case from the dispatch queue (人工分派)."""

    RETURN = "return"
    REASSIGN = "reassign"
    DISPATCH = "dispatch"


class Referral(StrEnum):
    LITIGATION = "litigation"
    ARBITRATION = "arbitration"
    ADMINISTRATIVE = "administrative"


class SupervisionLevel(StrEnum):
    WARNING = "warning"
    LEVEL_1 = "level_1"
    LEVEL_2 = "level_2"


class NoticeLevel(StrEnum):
    """The levels of a supervision notice a leader issues by hand, lowest first: 提示 (a
    reminder), 催办 (press to act), 督办 (supervise), 挂牌督办 (listed supervision, the
    highest). An answer missed by its deadline raises the notice one level."""

    REMINDER = "reminder"
    URGE = "urge"
    SUPERVISE = "supervise"
    LISTED = "listed"


class NoticeAction(StrEnum):
    """What happened to a supervision notice."""

    ISSUED = "issued"
    ANSWERED = "answered"
    RAISED = "raised"  # its answer was missed: one level up, as long again to answer
    MISSED = "missed"  # missed at the highest level: the leader is told again


class SlaKind(StrEnum):
    ACCEPTANCE = "acceptance"
    RESOLUTION = "resolution"


class PartyRole(StrEnum):
    REPORTER = "reporter"
    APPLICANT = "applicant"
    RESPONDENT = "respondent"
    PLAINTIFF = "plaintiff"
    DEFENDANT = "defendant"
    PETITIONER = "petitioner"
    OTHER = "other"


class LimitSource(StrEnum):
    """Who set a time limit: the routing policy (DOMAIN.md), the 12345 order's own deadline
    or urgency (the earlier of the two wins), or an extension (延期) the hotline approved."""

    POLICY = "policy"
    HOTLINE = "hotline"
    EXTENSION = "extension"


class CaseActivity(StrEnum):
    """What a lifecycle event records when it is not a change of status (from_status and
    to_status are then the same): a progress note (过程反馈), an extension request (延期申请)
    and the hotline's answer to it, and the 12345 hotline's updates after the order: the
    caller's added information (补充), a chaser (催办), a changed deadline or urgency."""

    PROGRESS_NOTE = "progress_note"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_APPROVED = "extension_approved"
    EXTENSION_DENIED = "extension_denied"
    HOTLINE_SUPPLEMENT = "hotline_supplement"
    HOTLINE_CHASER = "hotline_chaser"
    HOTLINE_DEADLINE_CHANGE = "hotline_deadline_change"


class HotlineUpdateKind(StrEnum):
    """What the 12345 hotline sends about an order after posting it: the caller added
    information (补充), chased (催办), a new deadline or urgency, the hotline's own return
    visit (回访结果)."""

    SUPPLEMENT = "supplement"
    CHASER = "chaser"
    DEADLINE_CHANGE = "deadline_change"
    FOLLOW_UP = "follow_up"


class ExtensionDecision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
