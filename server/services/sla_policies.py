"""A mailbox's SLA policies as a whole: read them as text, check them, save them (adding or updating
by name, re-timing the open tickets in batches), and answer "what if" with the real deadline code.

`postdesk sla policy-import` and the settings page's SLA page are two faces of these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.documents import DocumentError, load_document
from server.base.models import Mailbox, SlaPolicy
from server.services.sla import (
    CalendarError,
    Deadlines,
    Policy,
    deadlines,
    default_policy,
    policy_from_config,
)
from server.services.tickets import SYSTEM, Actor, record_event, refresh_mailbox


class PolicyError(ValueError):
    """The policies cannot be saved; ``problems`` lists every one with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse(text: str) -> list[dict[str, Any]]:
    """The policies in ``text`` (YAML or JSON: ``{policies: [...]}`` or a list), each checked whole."""
    try:
        data = load_document(text)
    except DocumentError as exc:
        raise PolicyError([str(exc)]) from exc
    return check(data)


def check(data: Any) -> list[dict[str, Any]]:
    items = data.get("policies") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise PolicyError(["expected a non-empty list of policies under 'policies'"])
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            policy_from_config(item)
        except CalendarError as exc:
            problems += [f"policies[{index}].{p}" for p in exc.problems]
    names = [str(item.get("name", "")).strip() for item in items if isinstance(item, dict)]
    if len(names) != len(set(names)):
        problems.append("two policies have the same name")
    if sum(1 for item in items if isinstance(item, dict) and item.get("default")) > 1:
        problems.append("only one policy can be the default")
    if problems:
        raise PolicyError(problems)
    return list(items)


def rows(session: Session, mailbox: Mailbox) -> list[SlaPolicy]:
    return list(
        session.scalars(select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id).order_by(SlaPolicy.name))
    )


def export_yaml(session: Session, mailbox: Mailbox) -> str:
    policies = [
        {"name": row.name} | ({"default": True} if row.is_default else {}) | {
            "calendar": row.calendar, "targets": row.targets, "pausing_statuses": row.pausing_statuses}
        for row in rows(session, mailbox)
    ]  # fmt: skip
    return yaml.safe_dump({"policies": policies}, allow_unicode=True, sort_keys=False)


def save(
    session: Session, mailbox: Mailbox, items: list[dict[str, Any]], *, actor: Actor = SYSTEM, batch: int
) -> int:
    """Add or update the policies by name (one default at most), with a ``sla_policies_changed`` event,
    and re-time the mailbox's open tickets in batches. Returns how many were re-timed."""
    before = export_yaml(session, mailbox)
    for item in items:
        name = item["name"].strip()
        row = session.scalar(
            select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id, SlaPolicy.name == name)
        )
        if row is None:
            row = SlaPolicy(mailbox_id=mailbox.id, name=name)
            session.add(row)
        row.calendar = item.get("calendar") or {}
        row.targets = item.get("targets") or {}
        row.pausing_statuses = item.get("pausing_statuses", ["pending", "on_hold"])
        if item.get("default"):
            for other in session.scalars(select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id)):
                other.is_default = False
            row.is_default = True
    session.flush()
    after = export_yaml(session, mailbox)
    if after != before:
        record_event(session, None, "sla_policies_changed", actor=actor, mailbox_id=mailbox.id,
                     before={"mailbox": mailbox.address, "policies": before},
                     after={"mailbox": mailbox.address, "policies": after})  # fmt: skip
    return refresh_mailbox(session, mailbox, at=datetime.now(UTC), batch=batch)


def policy_named(session: Session, mailbox: Mailbox, name: str | None) -> Policy:
    """The mailbox's policy ``name``, else its default policy, else the built-in default."""
    query = select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id)
    row = session.scalar(query.where(SlaPolicy.name == name)) if name else None
    row = row or session.scalar(query.where(SlaPolicy.is_default.is_(True)).limit(1))
    if row is not None:
        try:
            return policy_from_config({"name": row.name, "calendar": row.calendar, "targets": row.targets,
                                       "pausing_statuses": row.pausing_statuses})  # fmt: skip
        except CalendarError:
            pass
    return default_policy(mailbox.settings)


def what_if(policy: Policy, *, priority: str, arriving: datetime) -> Deadlines:
    """When a ticket of ``priority`` arriving at ``arriving`` is due: the code tickets use."""
    return deadlines(policy, created_at=arriving, priority=priority, status="open", first_responded=False,
                     paused_minutes=0.0)  # fmt: skip
