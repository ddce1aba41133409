"""csat_ratings: the optional NPS answer; tickets: the measures the reports read (response and resolution minutes, breaches, replies,
reopenings), filled in for the tickets already there; indexes that let a report read one period

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from server.services.sla import (
    CalendarError,
    Policy,
    business_minutes_between,
    default_policy,
    policy_from_config,
)

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

CLOSED = ("solved", "closed")
MEASURES = (
    ("first_response_minutes", sa.Float()),
    ("first_response_business_minutes", sa.Float()),
    ("first_response_breached", sa.Boolean()),
    ("resolution_minutes", sa.Float()),
    ("resolution_business_minutes", sa.Float()),
    ("resolution_breached", sa.Boolean()),
)
INDEXES = (
    ("tickets", "ix_tickets_mailbox_created", ["mailbox_id", "created_at"]),
    ("tickets", "ix_tickets_mailbox_solved", ["mailbox_id", "solved_at"]),
    ("tickets", "ix_tickets_mailbox_responded", ["mailbox_id", "first_responded_at"]),
    ("tickets", "ix_tickets_mailbox_updated", ["mailbox_id", "updated_at"]),
    ("messages", "ix_messages_mailbox_sent_at", ["mailbox_id", "sent_at"]),
    ("events", "ix_events_mailbox_kind_created", ["mailbox_id", "kind", "created_at"]),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name, kind in MEASURES:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column("agent_replies", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reopens", sa.Integer(), nullable=False, server_default="0"))
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns)
    # Replies: the agents' own outbound mail after the ticket came in (automatic mail never counts).
    op.execute(
        "UPDATE tickets SET agent_replies = (SELECT COUNT(*) FROM messages m WHERE m.ticket_id = tickets.id"
        " AND m.direction = 'outbound' AND NOT m.is_auto AND m.sent_at >= tickets.created_at)"
    )
    with op.batch_alter_table("csat_ratings") as batch:
        batch.add_column(sa.Column("nps", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            batch.f("ck_csat_ratings_nps_range"), "nps IS NULL OR (nps BETWEEN 0 AND 10)"
        )
    _measure_existing(op.get_bind())
    # updated_at is never earlier than the ticket's last message, Event or rating (the reports rely on it).
    for table, column in (("messages", "sent_at"), ("events", "created_at"), ("csat_ratings", "rated_at")):
        latest = f"(SELECT MAX(x.{column}) FROM {table} x WHERE x.ticket_id = tickets.id)"
        op.execute(f"UPDATE tickets SET updated_at = {latest} WHERE {latest} > updated_at")


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _policies(bind: sa.Connection) -> tuple[dict[int, Policy], dict[int, Policy]]:
    """Each stored policy by id, and each mailbox's default (its default policy, else its calendar)."""
    by_id: dict[int, Policy] = {}
    defaults: dict[int, Policy] = {}
    rows = bind.execute(
        sa.text(
            "SELECT id, mailbox_id, name, targets, calendar, pausing_statuses, is_default FROM sla_policies"
        )
    )
    for row in rows:
        config = {
            "name": row.name,
            "calendar": _json(row.calendar),
            "targets": _json(row.targets),
            "pausing_statuses": _json(row.pausing_statuses),
        }
        try:
            by_id[row.id] = policy_from_config(config)
        except CalendarError:
            continue
        if row.is_default:
            defaults.setdefault(row.mailbox_id, by_id[row.id])
    for row in bind.execute(sa.text("SELECT id, settings FROM mailboxes")):
        if row.id not in defaults:
            try:
                defaults[row.id] = default_policy(_json(row.settings) or {})
            except CalendarError:
                continue
    return by_id, defaults


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _measure_existing(bind: sa.Connection) -> None:
    """The measures of tickets that already have a first response or a solve, as the actions write them."""
    by_id, defaults = _policies(bind)
    reopened = _reopen_counts(bind)
    tickets = bind.execute(
        sa.text(
            "SELECT id, mailbox_id, sla_policy_id, priority, status, created_at, first_responded_at, solved_at,"
            " resolution_paused_minutes FROM tickets"
            " WHERE first_responded_at IS NOT NULL OR solved_at IS NOT NULL OR id IN"
            " (SELECT ticket_id FROM events WHERE kind = 'status_changed')"
        )
    ).all()
    for ticket in tickets:
        policy = by_id.get(ticket.sla_policy_id) or defaults.get(ticket.mailbox_id)
        values: dict[str, Any] = {"reopens": reopened.get(ticket.id, 0)}
        created = _utc(ticket.created_at)
        responded, solved = _utc(ticket.first_responded_at), _utc(ticket.solved_at)
        assert created is not None
        if responded is not None:
            business = _business(policy, created, responded)
            values |= {
                "first_response_minutes": max(0.0, (responded - created).total_seconds() / 60),
                "first_response_business_minutes": business,
                "first_response_breached": None
                if business is None or policy is None
                else business > policy.target(ticket.priority)[0],
            }
        if solved is not None and ticket.status in CLOSED:
            business = _business(policy, created, solved)
            if business is not None:
                business = max(0.0, business - float(ticket.resolution_paused_minutes or 0.0))
            values |= {
                "resolution_minutes": max(0.0, (solved - created).total_seconds() / 60),
                "resolution_business_minutes": business,
                "resolution_breached": None
                if business is None or policy is None
                else business > policy.target(ticket.priority)[1],
            }
        assignments = ", ".join(f"{key} = :{key}" for key in values)
        bind.execute(sa.text(f"UPDATE tickets SET {assignments} WHERE id = :id"), {**values, "id": ticket.id})


def _reopen_counts(bind: sa.Connection) -> dict[int, int]:
    counts: dict[int, int] = {}
    for ticket_id, before, after in bind.execute(
        sa.text("SELECT ticket_id, before, after FROM events WHERE kind = 'status_changed'")
    ):
        was, now = (_json(before) or {}).get("status"), (_json(after) or {}).get("status")
        if ticket_id is not None and was in CLOSED and now not in CLOSED:
            counts[ticket_id] = counts.get(ticket_id, 0) + 1
    return counts


def _business(policy: Policy | None, start: datetime, end: datetime) -> float | None:
    if policy is None:
        return None
    try:
        return max(0.0, business_minutes_between(policy.calendar, start, end))
    except CalendarError:
        return None


def downgrade() -> None:
    with op.batch_alter_table("csat_ratings") as batch:
        batch.drop_constraint(batch.f("ck_csat_ratings_nps_range"), type_="check")
        batch.drop_column("nps")
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("reopens")
        batch.drop_column("agent_replies")
        for name, _kind in reversed(MEASURES):
            batch.drop_column(name)
