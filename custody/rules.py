"""The regulation's numbers, at the bottom of every layer: how long footage is kept.

Footage is kept at least two years; four kinds of footage are kept for ever.
The retention policy, the config check and the off-site Object Lock all read
these one definitions.
"""

from __future__ import annotations

import re
from datetime import datetime

FLOOR_MONTHS = 24  # the regulation: footage is kept at least two years
PERMANENT = "permanent"

# Shipped categories: routine footage, and the four kinds kept for ever.
DEFAULT_CATEGORIES: dict[str, str] = {
    "routine": "2y",
    "penalty_evidence": PERMANENT,  # used as evidence for an administrative penalty
    "obstruction": PERMANENT,  # enforcement obstructed, official duty hindered
    "major_incident": PERMANENT,  # major emergencies, mass incidents
    "major_case": PERMANENT,  # major, difficult or complex enforcement
}

_PERIOD = re.compile(r"(\d+)\s*([ym])")


class PeriodError(ValueError):
    """A retention period that is not "permanent", "<n>y" or "<n>m", or is below the floor."""


def parse_period(text: str) -> int | None:
    """Return a period in months (None for "permanent"); raise PeriodError for anything else.

    Periods below the two-year floor are refused: no setting may keep footage shorter.
    """
    value = text.strip().lower()
    if value == PERMANENT:
        return None
    found = _PERIOD.fullmatch(value)
    if not found:
        raise PeriodError(f'{text!r} is not a period: use "permanent", years ("5y") or months ("30m")')
    months = int(found.group(1)) * (12 if found.group(2) == "y" else 1)
    if months < FLOOR_MONTHS:
        raise PeriodError(f"{text} is below the 2-year floor: footage is kept at least two years")
    return months


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months; the 29-31st fall back to the month's last day."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    month += 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


# -- Case files (the rule's art. 5-24): stages, document types, deadlines -----------------------

# The stages of a case in the rule's order: (key, Chinese, English, articles).
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("initiation", "程序启动", "initiation", "art. 6-7"),
    ("investigation", "调查取证", "investigation and evidence", "art. 8-14"),
    ("review", "审查决定", "review and decision", "art. 15-17"),
    ("service", "送达执行", "service and enforcement", "art. 18-21"),
    ("archive", "归档管理", "archive", "art. 22"),
)
STAGE_KEYS = tuple(stage[0] for stage in STAGES)
PROCEDURES = ("general", "simple")
PARTY_KINDS = ("person", "company", "other")
FILING_APPROVAL_HOURS = 24  # art. 6: an urgent case's filing is approved within 24 hours of its start
ARCHIVE_DAYS = 30  # art. 22: a case file is archived within 30 days of the end of the action

# The rule's written records: Chinese name -> (English name, stage, whether an audio-visual
# record of the act is required with it: art. 11, 12 and 18(4)). [cases.document_types] in
# custody.toml adds types or changes these.
DOCUMENT_TYPES: dict[str, tuple[str, str, bool]] = {
    "立案审批表": ("filing approval form", "initiation", False),
    "询问笔录": ("inquiry record", "investigation", True),
    "调查笔录": ("investigation record", "investigation", True),
    "现场检查笔录": ("on-site inspection record", "investigation", True),
    "勘验笔录": ("survey record", "investigation", True),
    "证据登记保存清单": ("evidence registration and preservation list", "investigation", True),
    "抽样取证凭证": ("sampling record", "investigation", True),
    "查封扣押清单": ("sealing-up and seizure list", "investigation", True),
    "不予配合情况记录": ("record of a party not cooperating", "investigation", True),
    "拒绝签字记录": ("record of a refusal to sign or seal", "investigation", True),
    "鉴定委托书": ("appraisal commission", "investigation", False),
    "鉴定意见": ("appraisal opinion", "investigation", False),
    "权利告知书": ("notice of rights", "review", False),
    "陈述申辩笔录": ("statement and defence record", "review", False),
    "听证笔录": ("hearing record", "review", True),
    "专家论证意见": ("expert panel opinion", "review", False),
    "法制审核意见": ("legal review opinion", "review", False),
    "集体讨论记录": ("collective discussion record", "review", False),
    "负责人审批": ("approval of the person in charge", "review", False),
    "行政处罚决定书": ("administrative penalty decision", "review", False),
    "不予行政处罚决定书": ("decision not to impose a penalty", "review", False),
    "送达回证": ("proof of service", "service", False),
    "留置送达记录": ("record of service left at the residence", "service", True),
    "邮寄凭证": ("postal service receipt", "service", False),
    "公告": ("public notice", "service", False),
    "催告书": ("reminder notice", "service", False),
    "强制执行申请": ("application for compulsory enforcement", "service", False),
    "其他": ("other", "investigation", False),
}
FILING_FORM = "立案审批表"
# A penalty decision makes the case's footage evidence for a penalty, kept for ever (art. 24).
PENALTY_DECISION = "行政处罚决定书"
PENALTY_CATEGORY = "penalty_evidence"
# Proof that a decision reached the party (art. 18-19): one of these completes a decided case.
SERVICE_PROOFS = ("送达回证", "留置送达记录", "邮寄凭证", "公告")
# The documents a procedure's case file cannot be archived without.
REQUIRED_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "general": (FILING_FORM,),
    "simple": (PENALTY_DECISION,),
}
