"""@mentions in internal notes: who a note names, found by name or address, never guessed.

``@`` followed by an agent's name (any number of its first words: "@Anna", "@Anna Petrova",
"@анна петрова") or by their address or its beginning ("@anna.p", "@anna@example.com") names that
agent, case-insensitively, in Latin or Cyrillic. The longest reading wins ("@Anna Petrova said"
names Anna Petrova, not someone called Anna). An ``@`` inside a word (an email address in the text)
is no mention. A mention that fits nobody, fits several people, or names someone who cannot see the
mailbox is a problem shown to the writer; the note is not saved until it is put right.

A saved note's mentions are ``Note.mentions`` and rows of ``note_mentions`` (the person's Mentions
list on their add-on homepage, until they open the ticket); each mentioned person but the writer
gets one email in their language through the Outbox (keyed by note and person: never twice), if
they want mention mail, and follows the ticket from then on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import regex
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import (
    ActorKind,
    Agent,
    Mailbox,
    Note,
    NoteMention,
    OutboxKind,
    Ticket,
    TicketView,
    mailbox_members,
)
from server.gmail.send import enqueue
from server.services import following, tickets
from server.services.composing import ticket_link
from server.services.tickets import Actor

#: "@" at the start or after anything but a letter, digit, dot or "@"; then up to three words.
_MENTION = regex.compile(
    r"(?<![\p{L}\p{N}._@-])@([\p{L}\p{N}][\p{L}\p{N}._'@-]*(?:[ \t]+[\p{L}\p{N}][\p{L}\p{N}'-]*){0,2})"
)
#: The most people one note may mention (each gets an email).
MAX_MENTIONS = 20


@dataclass
class Mentions:
    agents: list[Agent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _named(agent: Agent, words: list[str]) -> bool:
    """The words are the first words of the agent's name."""
    name = (agent.name or "").casefold().split()
    return bool(name) and len(words) <= len(name) and name[: len(words)] == [w.casefold() for w in words]


def _addressed(agent: Agent, words: list[str]) -> bool:
    """One word that begins the agent's address."""
    wanted = words[0].casefold()
    return len(words) == 1 and len(wanted) >= 2 and agent.email.casefold().startswith(wanted)


def find(session: Session, mailbox: Mailbox, text: str) -> Mentions:
    found = Mentions()
    agents = list(session.scalars(select(Agent).where(Agent.active.is_(True))))
    members = set(
        session.scalars(select(mailbox_members.c.agent_id).where(mailbox_members.c.mailbox_id == mailbox.id))
    )
    for match in _MENTION.finditer(text):
        words = match.group(1).split()
        words[-1] = words[-1].rstrip(".,;:!?")
        chosen: list[Agent] = []
        used = 1
        for count in range(len(words), 0, -1):
            # A name read whole wins over addresses that merely begin so ("@Person1", not person10@).
            fitting = [a for a in agents if _named(a, words[:count])] or [
                a for a in agents if _addressed(a, words[:count])
            ]
            if fitting:
                chosen = fitting
                used = count
                break
        shown = "@" + " ".join(words[: used if chosen else 1])
        if not chosen:
            found.problems.append(f"{shown}: nobody of the team by that name or address")
        elif len(chosen) > 1:
            names = ", ".join(sorted(a.name or a.email for a in chosen))
            found.problems.append(f"{shown} could be {names}: write more of the name")
        elif chosen[0].id not in members:
            found.problems.append(
                f"{shown}: {chosen[0].name or chosen[0].email} cannot see {mailbox.address}"
            )
        elif chosen[0] not in found.agents:
            found.agents.append(chosen[0])
    if len(found.agents) > MAX_MENTIONS:
        found.problems.append(f"a note mentions at most {MAX_MENTIONS} people ({len(found.agents)} here)")
    return found


class MentionProblem(ValueError):
    """Mentions that cannot be resolved; ``problems`` lists each, for the writer."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


MAIL = {
    "en": ("[#{number}] {writer} mentioned you: {subject}",
           "{writer} mentioned you in a note on ticket #{number} ({subject}):\n\n{note}\n\nOpen the ticket: {link}\n"),
    "ru": ("[#{number}] {writer} упоминает вас: {subject}",
           "{writer} упоминает вас в заметке к заявке #{number} ({subject}):\n\n{note}\n\nОткрыть заявку: {link}\n"),
}  # fmt: skip


def add_note(session: Session, ticket: Ticket, body: str, *, writer: Agent, at: datetime) -> Note:
    """An agent's note with its mentions: refused whole (:class:`MentionProblem`) when a mention is
    unknown, ambiguous or names someone who cannot see the mailbox; else saved through the add-note
    action, each mentioned person told once (not the writer) and following the ticket."""
    from server.services.action_kinds import MAX_NOTE_LENGTH, ActionRefused

    if ticket.status == "merged":
        raise ActionRefused(tickets.merged_note(session, ticket))
    text = body.strip() if isinstance(body, str) else ""
    if not text or len(text) > MAX_NOTE_LENGTH:
        raise ActionRefused(f"a note is 1 to {MAX_NOTE_LENGTH:,} characters")
    found = find(session, ticket.mailbox, text)
    if found.problems:
        raise MentionProblem(found.problems)
    note = tickets.add_note(session, ticket, text, at=at, author_id=writer.id, actor=Actor(ActorKind.AGENT, writer.id),
                            mentions=[agent.id for agent in found.agents])  # fmt: skip
    session.flush()
    for agent in found.agents:
        session.add(NoteMention(note_id=note.id, agent_id=agent.id, ticket_id=ticket.id, created_at=at))
        if agent.id == writer.id:
            continue
        following.follow(session, ticket, agent, at=at)
        if agent.wants("mentions"):
            _tell(session, ticket, note, agent, writer, at)
    return note


def _tell(session: Session, ticket: Ticket, note: Note, agent: Agent, writer: Agent, at: datetime) -> None:
    subject, text = MAIL.get(agent.locale, MAIL["en"])
    words = {"writer": writer.name or writer.email, "number": ticket.number, "subject": ticket.subject,
             "note": note.body, "link": ticket_link(ticket)}  # fmt: skip
    enqueue(session, mailbox=ticket.mailbox, kind=OutboxKind.NOTIFICATION, key=f"mention:{note.id}:{agent.id}",
            to=[agent.email], subject=subject.format(**words), text=text.format(**words), ticket=ticket,
            headers={"internal": True}, now=at)  # fmt: skip


def unseen(
    session: Session, agent: Agent, mailbox_ids: list[int], *, limit: int = 10
) -> list[tuple[Note, Ticket]]:
    """The notes naming ``agent`` on tickets they have not opened since (newest first)."""
    seen = TicketView.viewed_at
    rows = session.execute(
        select(Note, Ticket)
        .join(NoteMention, NoteMention.note_id == Note.id)
        .join(Ticket, Ticket.id == NoteMention.ticket_id)
        .outerjoin(TicketView, (TicketView.ticket_id == Ticket.id) & (TicketView.agent_id == agent.id))
        .where(NoteMention.agent_id == agent.id, Ticket.mailbox_id.in_(mailbox_ids or [-1]),
               Note.author_id.is_distinct_from(agent.id), (seen.is_(None)) | (seen < NoteMention.created_at))
        .order_by(NoteMention.created_at.desc()).limit(limit)
    )  # fmt: skip
    return [(note, ticket) for note, ticket in rows]
