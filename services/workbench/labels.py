"""Chinese names of the codes the pages show."""

from __future__ import annotations

from contracts.enums import Category, Channel, Department, Referral, Risk, Status, Tier
from services.router.domain.vocabulary import CATEGORY_ZH, DEPARTMENT_ZH, RISK_ZH, TIER_ZH

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
