"""The overview's tiles, shared by the reports page and the weekly mail: each figure with the same
figure of the previous period, whether the change is for the better, and the set it drills into."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from server.services.figures import metrics


@dataclass(frozen=True)
class Tile:
    """One overview tile: the figure, the same figure of the previous period, and its tickets."""

    title: str
    value: float | None
    before: float | None
    kind: str  # "count", "minutes", "percent", "ratio", "score" (NPS: −100 … 100)
    lower_is_better: bool | None = False  # None: neither way is better (more new tickets …)
    drill: str | None = None
    note: str = ""
    key: str = ""  # the tile's own name (its id on the page); the set it drills into when empty

    @property
    def name(self) -> str:
        return self.key or self.drill or ""

    @property
    def trend(self) -> str:
        """``up``, ``down`` or ``same`` (``none`` when either period has no value)."""
        if self.value is None or self.before is None:
            return "none"
        if abs(self.value - self.before) < 1e-9:
            return "same"
        return "up" if self.value > self.before else "down"

    @property
    def better(self) -> bool | None:
        if self.trend in ("none", "same") or self.lower_is_better is None:
            return None
        return (self.trend == "down") == self.lower_is_better


def minutes_text(minutes: float | None) -> str:
    """``2 h 05 min``, ``3 d 4 h``, ``45 min`` in the reader's language; ``—`` for no value."""
    if minutes is None:
        return "—"
    whole = int(round(minutes))
    days, rest = divmod(whole, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return str(_("%(d)d d %(h)d h", d=days, h=hours))
    if hours:
        return str(_("%(h)d h %(m)02d min", h=hours, m=mins))
    return str(_("%(m)d min", m=mins))


def tiles(current: metrics.Overview, before: metrics.Overview) -> tuple[list[Tile], list[Tile]]:
    """The period's tiles (with the previous period) and the "now" tiles."""
    c, b = current.counts, before.counts
    period = [
        Tile(_("New tickets"), c["new"], b["new"], "count", lower_is_better=None, drill="new"),
        Tile(_("Solved"), c["solved"], b["solved"], "count", drill="solved"),
        Tile(_("Reopened"), c["reopened"], b["reopened"], "count", lower_is_better=True, drill="reopened"),
        Tile(_("First response (median, business time)"), current.first_response.median,
             before.first_response.median, "minutes", lower_is_better=True, drill="responded", key="first_response",
             note=_("calendar time: %(t)s", t=minutes_text(current.first_response_calendar.median))),
        Tile(_("Resolution (median, business time)"), current.resolution.median, before.resolution.median,
             "minutes", lower_is_better=True, drill="solved", key="resolution",
             note=_("calendar time: %(t)s", t=minutes_text(current.resolution_calendar.median))),
        Tile(_("First responses within SLA"), current.first_response_sla, before.first_response_sla, "percent",
             drill="fr_missed", note=_("%(n)d missed", n=c["fr_missed"])),
        Tile(_("Resolutions within SLA"), current.resolution_sla, before.resolution_sla, "percent",
             drill="res_missed", note=_("%(n)d missed", n=c["res_missed"])),
        Tile(_("First contact resolution"), current.fcr, before.fcr, "percent", drill="fcr"),
        Tile(_("Replies per solved ticket"), current.replies_per_ticket, before.replies_per_ticket, "ratio",
             lower_is_better=True, drill="solved", key="replies"),
        Tile(_("Satisfied customers (CSAT)"), current.csat_score, before.csat_score, "percent", drill="rated",
             note=_("%(n)d ratings", n=current.csat[0])),
    ]  # fmt: skip
    if current.nps[0] or before.nps[0]:  # asked at all (the mailbox's choice)
        period.append(Tile(_("Net Promoter Score (NPS)"), current.nps_score, before.nps_score, "score",
                           drill="rated", key="nps", note=_("%(n)d answers", n=current.nps[0])))  # fmt: skip
    if c.get("faq_answered") or b.get("faq_answered"):  # the mailbox has FAQ answers at all
        period.append(Tile(_("FAQ deflection"), current.faq_deflection, before.faq_deflection, "percent",
                           drill="faq_deflected", key="faq_deflection",
                           note=_("%(n)d FAQ answers sent", n=c.get("faq_answered", 0))))  # fmt: skip
    now = [
        Tile(_("Backlog"), c["backlog"], None, "count", drill="backlog"),
        Tile(_("Unanswered"), c["unanswered"], None, "count", drill="unanswered"),
        Tile(_("Waiting on the customer"), c["waiting"], None, "count", drill="waiting"),
        Tile(_("Overdue"), c["overdue"], None, "count", drill="overdue"),
    ]
    return period, now
