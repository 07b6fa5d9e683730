"""Campaign statuses in one place: the lifecycle's transition table and the sets of statuses
that the planner, the dispatcher, the evaluation and the public pages act on.

Lifecycle (:data:`ALLOWED_TRANSITIONS`)::

    draft ──► approved ──► scheduled ──► dispatching ──► sent
      │  ▲        │            │                    └──► partially_failed ─► dispatching | sent
      ▼  │        ├──► needs_review ◄──┘
    dropped       │        │  (window moved > a week or vanished; approve again or cancel)
                  ▼        ▼
      cancelled ◄── draft, dropped, approved, scheduled, needs_review
      superseded ◄── draft, dropped, needs_review   (the planner replaced it)

``dropped`` is the planner's draft that a constraint left without a send date; replanning may
revive it.
"""

from __future__ import annotations

__all__ = ["ALLOWED_TRANSITIONS", "STATUSES", "EDITABLE", "OCCUPYING", "PUBLISHED",
           "REPLANNABLE", "FLAGGABLE", "SENDABLE", "SENT", "COMMITTED", "UNASSIGNED_TIMING",
           "LIVE", "STATUS_ZH"]

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "cancelled", "superseded", "dropped"}),
    "dropped": frozenset({"draft", "cancelled", "superseded"}),
    "approved": frozenset({"scheduled", "cancelled", "needs_review"}),
    "scheduled": frozenset({"dispatching", "cancelled", "needs_review"}),
    "dispatching": frozenset({"sent", "partially_failed"}),
    "partially_failed": frozenset({"dispatching", "sent"}),
    "needs_review": frozenset({"approved", "cancelled", "superseded"}),
    "sent": frozenset(),
    "cancelled": frozenset(),
    "superseded": frozenset(),
}
STATUSES = tuple(ALLOWED_TRANSITIONS)
#: Statuses whose content may be edited (PATCH).
EDITABLE = frozenset({"draft", "dropped", "needs_review"})
#: Statuses whose send date is taken and fixed for the planner.
OCCUPYING = frozenset({"approved", "scheduled", "dispatching", "sent", "partially_failed",
                       "needs_review"})
#: Statuses of reminders that are published once their send date has come.
PUBLISHED = frozenset({"approved", "scheduled", "dispatching", "sent", "partially_failed"})
#: Statuses the planner may still move or supersede.
REPLANNABLE = frozenset({"draft", "dropped"})
#: Committed statuses the planner flags for review when their window moves or vanishes.
FLAGGABLE = frozenset({"approved", "scheduled"})
#: Campaigns whose outbox rows may go out.
SENDABLE = frozenset({"scheduled", "dispatching", "partially_failed", "sent"})
#: Campaigns whose reminders went (or are going) out: what an effect is measured for.
SENT = frozenset({"dispatching", "sent", "partially_failed"})
#: Campaigns someone committed to (approved or further, or under review after approval).
COMMITTED = frozenset({"approved", "scheduled", "needs_review", *SENT})
#: Campaigns whose randomised timing may still be drawn (no send yet).
UNASSIGNED_TIMING = frozenset({"draft", "dropped", "approved", "needs_review"})
#: Campaigns still in play (neither cancelled, superseded nor dropped).
LIVE = frozenset(STATUSES) - {"cancelled", "superseded", "dropped"}
#: The statuses in Chinese (dashboard, PNG charts, problem details).
STATUS_ZH = {
    "draft": "草稿", "dropped": "未排期", "approved": "已批准", "scheduled": "已排期",
    "dispatching": "发送中", "sent": "已发送", "partially_failed": "部分失败",
    "cancelled": "已取消", "needs_review": "待复核", "superseded": "已替代",
}
