"""The help centre in the reports: what was read, what answered, what was searched for and not found,
who wrote after reading and who did not, for a period and mailboxes — read from the day counters
(server/base/help_tables.py), a few grouped queries whatever the traffic.

The **deflection rate** is the share of article views that were not followed by a question from the
contact form: ``(views − questions sent after reading) / views``. Without cookies a visit cannot be
followed, so a view is the unit: a visitor who reads three articles and writes once counts three views
and one question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.base.help_tables import Article, ArticleDay, HelpDay, HelpMiss
from server.services.figures.metrics import Period

#: The most read articles and the most searched-for misses shown.
TOP = 10


@dataclass
class HelpFigures:
    views: int = 0
    answered_yes: int = 0
    answered_no: int = 0
    searches: int = 0
    searches_empty: int = 0
    contacts_after_reading: int = 0
    contacts_direct: int = 0
    #: (title, language, views, yes, no) of the most read articles.
    articles: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    #: (what was searched for, how many times) that found nothing.
    misses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def deflection(self) -> float | None:
        if not self.views:
            return None
        return 100.0 * max(0, self.views - self.contacts_after_reading) / self.views

    @property
    def answered(self) -> float | None:
        votes = self.answered_yes + self.answered_no
        return 100.0 * self.answered_yes / votes if votes else None


def help_figures(session: Session, mailbox_ids: tuple[int, ...], period: Period) -> HelpFigures:
    found = HelpFigures()
    if not mailbox_ids:
        return found
    days = (ArticleDay.day >= period.first, ArticleDay.day <= period.last)
    per_article = session.execute(
        select(Article.title, Article.language, func.sum(ArticleDay.views), func.sum(ArticleDay.answered_yes),
               func.sum(ArticleDay.answered_no))
        .join(ArticleDay, ArticleDay.article_id == Article.id)
        .where(Article.mailbox_id.in_(mailbox_ids), *days)
        .group_by(Article.id, Article.title, Article.language)
        .order_by(func.sum(ArticleDay.views).desc(), Article.id)
    ).all()  # fmt: skip
    for _title, _language, views, yes, no in per_article:
        found.views += int(views or 0)
        found.answered_yes += int(yes or 0)
        found.answered_no += int(no or 0)
    found.articles = [
        (t, lang, int(v or 0), int(y or 0), int(n or 0)) for t, lang, v, y, n in per_article[:TOP]
    ]
    totals = session.execute(
        select(func.sum(HelpDay.searches), func.sum(HelpDay.searches_empty), func.sum(HelpDay.contacts_after_reading),
               func.sum(HelpDay.contacts_direct))
        .where(HelpDay.mailbox_id.in_(mailbox_ids), HelpDay.day >= period.first, HelpDay.day <= period.last)
    ).one()  # fmt: skip
    found.searches, found.searches_empty, found.contacts_after_reading, found.contacts_direct = (
        int(value or 0) for value in totals
    )
    found.misses = [
        (query, int(times))
        for query, times in session.execute(
            select(HelpMiss.query, func.sum(HelpMiss.count))
            .where(HelpMiss.mailbox_id.in_(mailbox_ids), HelpMiss.day >= period.first, HelpMiss.day <= period.last)
            .group_by(HelpMiss.query)
            .order_by(func.sum(HelpMiss.count).desc(), HelpMiss.query)
            .limit(TOP)
        )
    ]  # fmt: skip
    return found
