"""the "snooze ended" reminder says until when: stored defaults nobody edited take the new wording

Two snoozes of one ticket sent two identical emails ("snoozed until now"); the default template now
names the snooze's end. install_defaults never overwrites a stored template, so mailboxes made before
keep the old text: this changes it where it is still exactly the old default (an edited one is the
team's and stays as it is). Downgrading leaves the text as it is.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

_LINE = "#{{ ticket.number }} {{ ticket.subject }}\n{{ ticket.link }}\n"
#: (locale, the old default body, the new one)
CHANGES = [
    (
        "en",
        "Ticket #{{ ticket.number }} was snoozed until now and is back in your queue.\n\n" + _LINE,
        "Ticket #{{ ticket.number }} was snoozed until {{ reminder.due_at }} and is back in your queue.\n\n"
        + _LINE,
    ),
    (
        "ru",
        "Заявка #{{ ticket.number }} была отложена до этого момента и снова в вашей очереди.\n\n" + _LINE,
        "Заявка #{{ ticket.number }} была отложена до {{ reminder.due_at }} и снова в вашей очереди.\n\n"
        + _LINE,
    ),
]


def upgrade() -> None:
    templates = sa.table(
        "templates",
        sa.column("name", sa.String),
        sa.column("locale", sa.String),
        sa.column("body_text", sa.Text),
    )
    for locale, old, new in CHANGES:
        op.execute(
            templates.update()
            .where(
                templates.c.name == "Reminder: snooze ended",
                templates.c.locale == locale,
                templates.c.body_text == old,
            )
            .values(body_text=new)
        )


def downgrade() -> None:
    pass
