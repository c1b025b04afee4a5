"""Chinese names of the codes the pages show."""

from __future__ import annotations

from contracts.enums import (
    Category,
    Channel,
    Department,
    PartyRole,
    Referral,
    Risk,
    Status,
    SupervisionLevel,
    Tier,
    Urgency,
)
from contracts.vocabulary import CATEGORY_ZH, DEPARTMENT_ZH, RISK_ZH, TIER_ZH

STATUS_ZH: dict[str, str] = {
    Status.REPORTED: "已登记", Status.ROUTED: "已分派", Status.ACCEPTED: "已受理",
    Status.IN_MEDIATION: "调解中", Status.RESOLVED: "调解成功", Status.FAILED: "调解失败",
    Status.ESCALATED: "已上提", Status.REFERRED: "已转办", Status.WITHDRAWN: "已撤回",
    Status.RETURNED: "已退回", Status.AWAITING_DISPATCH: "待人工分派",
    Status.RETURNED_TO_SOURCE: "已退单", Status.CLOSED: "已办结", Status.VISITED: "已回访",
    Status.RATED: "已评价", Status.ARCHIVED: "已归档", Status.MERGED: "已合并",
}

# What the button for a step says.
STEP_ZH: dict[str, str] = {
    Status.ACCEPTED: "受理", Status.IN_MEDIATION: "开始调解", Status.RESOLVED: "调解成功",
    Status.FAILED: "调解失败", Status.ESCALATED: "上提", Status.REFERRED: "转办（诉讼/仲裁/行政）",
    Status.WITHDRAWN: "撤回", Status.RETURNED: "退回", Status.RETURNED_TO_SOURCE: "退单（退回12345）",
    Status.CLOSED: "办结", Status.VISITED: "回访", Status.RATED: "满意度评价",
    Status.ARCHIVED: "归档", Status.ROUTED: "重新分派",
}

CHANNEL_ZH: dict[str, str] = {
    Channel.HOTLINE_12345: "12345热线", Channel.GRID: "网格上报", Channel.POLICE: "110警情",
    Channel.COURT: "法院委派", Channel.PETITION: "信访", Channel.WALK_IN: "窗口来访",
    Channel.OPEN311: "Open311",
}

REFERRAL_ZH: dict[str, str] = {Referral.LITIGATION: "诉讼", Referral.ARBITRATION: "仲裁",
                               Referral.ADMINISTRATIVE: "行政处理"}

CATEGORIES: dict[str, str] = {c.value: CATEGORY_ZH[c] for c in Category}
DEPARTMENTS: dict[str, str] = {d.value: DEPARTMENT_ZH[d] for d in Department}
TIERS: dict[str, str] = {t.value: TIER_ZH[t] for t in Tier}
RISKS: dict[str, str] = {r.value: RISK_ZH[r] for r in Risk}
STATUSES: dict[str, str] = {s.value: STATUS_ZH[s] for s in Status}
CHANNELS: dict[str, str] = {c.value: CHANNEL_ZH[c] for c in Channel}
REFERRALS: dict[str, str] = {r.value: REFERRAL_ZH[r] for r in Referral}

PARTY_ROLES: dict[str, str] = {
    PartyRole.REPORTER: "反映人", PartyRole.APPLICANT: "申请人", PartyRole.RESPONDENT: "被申请人",
    PartyRole.PLAINTIFF: "原告", PartyRole.DEFENDANT: "被告", PartyRole.PETITIONER: "信访人",
    PartyRole.OTHER: "当事人"}

SUPERVISION_LEVELS: dict[str, str] = {
    SupervisionLevel.WARNING: "预警", SupervisionLevel.LEVEL_1: "一级督办",
    SupervisionLevel.LEVEL_2: "二级督办"}

URGENCIES: dict[str, str] = {Urgency.NORMAL: "一般", Urgency.URGENT: "紧急",
                             Urgency.VERY_URGENT: "特急"}

# The channels' own fields (CaseReported.channel_fields, docs/intake.md), as the pages name
# them; a field not named here is shown by its code.
CHANNEL_FIELDS: dict[str, str] = {
    "order_no": "工单编号", "category": "诉求分类", "urgency": "紧急程度", "deadline": "办理期限",
    "region_code": "行政区划代码", "report_id": "上报编号", "grid_code": "网格编码",
    "event_type": "事件类型", "reporter_id": "网格员工号", "occurred_at": "发生时间",
    "people_involved": "涉及人数", "incident_no": "警情编号", "station_code": "派出所代码",
    "station_name": "派出所", "dispute_type": "纠纷类型", "injuries": "有无人员受伤",
    "case_no": "案号", "court_code": "法院代码", "court_name": "委派法院", "cause": "案由",
    "claim_amount": "标的额（元）", "referred_at": "委派时间", "mediation_deadline": "调解期限",
    "petition_no": "信访件编号", "people_count": "人数", "visit_id": "来访编号",
    "visited_at": "来访时间"}
