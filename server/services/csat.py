"""Customer satisfaction: one-click rating links in mail, and the one rating a ticket keeps.

A link is ``/csat/<token>``, the token signed with the instance secret (itsdangerous, its own salt)
and naming the ticket and the choice; it is valid for the mailbox's ``csat.days`` (14) from when the
mail was written. A click records the rating (a later click within the window changes it), as an
Event on the ticket, and runs the mailbox's ``csat_rated`` rules (e.g. tell the lead about a bad one).
A forged, altered or expired token stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from server.base.models import CsatRating, Mailbox, Ticket
from server.services.mailbox_settings import CSAT_SCALES as SCALES
from server.services.mailbox_settings import csat_settings as settings_of
from server.services.tickets import record_event

SALT = "postdesk-csat-v1"
MAX_COMMENT = 2_000


class RatingRefused(ValueError):
    """The link cannot be used: ``expired`` tells an old link from a forged or altered one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


@dataclass(frozen=True)
class Choice:
    value: str
    url: str


def links(ticket: Ticket, mailbox: Mailbox, *, secret: str, base_url: str) -> list[Choice]:
    """The rating links for a mail about ``ticket``, best first; none when CSAT is off or no base URL."""
    config = settings_of(mailbox)
    if not config["enabled"] or not base_url or ticket.id is None:
        return []
    signer = _serializer(secret)
    base = base_url.rstrip("/")
    return [
        Choice(value, f"{base}/csat/{signer.dumps({'t': ticket.id, 'v': value})}")
        for value in SCALES[config["scale"]]
    ]


@dataclass(frozen=True)
class Claim:
    ticket_id: int
    value: str
    #: When the link was written (the mailbox's window counts from here).
    issued_at: datetime

    def check_age(self, mailbox: Mailbox, now: datetime) -> None:
        """:class:`RatingRefused` (expired) when the link is older than the mailbox's window."""
        if (now - self.issued_at).total_seconds() > age_limit(mailbox) * 86_400:
            raise RatingRefused("the rating link has expired", expired=True)


def read(token: str, *, secret: str, max_age_days: float) -> Claim:
    """What a link says, if it is ours, unaltered and no older than ``max_age_days`` (the longest any
    mailbox allows; :meth:`Claim.check_age` applies the ticket's own); :class:`RatingRefused` else."""
    if not token or len(token) > 500:
        raise RatingRefused("not a rating link")
    try:
        data, issued_at = _serializer(secret).loads(
            token, max_age=int(max_age_days * 86_400), return_timestamp=True
        )
    except SignatureExpired as exc:
        raise RatingRefused("the rating link has expired", expired=True) from exc
    except BadSignature as exc:
        raise RatingRefused("not a rating link of ours") from exc
    if not isinstance(data, dict) or not isinstance(data.get("t"), int) or not isinstance(data.get("v"), str):
        raise RatingRefused("not a rating link of ours")
    return Claim(data["t"], data["v"], issued_at)


def age_limit(mailbox: Mailbox) -> int:
    return int(settings_of(mailbox)["days"])


def rate(
    session: Session,
    ticket: Ticket,
    value: str,
    *,
    at: datetime,
    comment: str | None = None,
    nps: int | None = None,
) -> bool:
    """Keep the customer's rating (and comment, and NPS answer when the mailbox asks it) of ``ticket``;
    True when anything changed, with a ``csat_rated`` Event. Not committed. A value outside the
    mailbox's scale, or an NPS answer outside 0–10, is refused."""
    config = settings_of(ticket.mailbox)
    scale = SCALES[config["scale"]]
    if value not in scale:
        raise RatingRefused("not a choice of this mailbox's rating")
    if nps is not None and not (config["nps"] and 0 <= nps <= 10):
        raise RatingRefused("not an answer this mailbox asks for (0 to 10)")
    row = session.get(CsatRating, ticket.id)
    before = None if row is None else {"value": row.value, "comment": row.comment, "nps": row.nps}
    if row is None:
        row = CsatRating(ticket_id=ticket.id, mailbox_id=ticket.mailbox_id, value=value, score=scale[value],
                         comment="", rated_at=at, changes=0)  # fmt: skip
        session.add(row)
    elif row.value != value:
        row.value, row.score, row.rated_at, row.changes = value, scale[value], at, row.changes + 1
    if comment is not None and comment.strip():
        row.comment = comment.strip()[:MAX_COMMENT]
    if nps is not None:
        row.nps = nps
    after = {"value": row.value, "comment": row.comment, "nps": row.nps}
    if after == before:
        return False
    record_event(session, ticket, "csat_rated", before=before, after=after, at=at)
    return True
