"""What a new mailbox starts with: templates and rules that teach the habits of good support teams.

Acknowledge every new ticket with its number and when to expect an answer; recognise urgent mail;
spread work round-robin; answer a frequent question at once; tell the customer when a ticket is solved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import rules as rule_engine
from server.base.models import Mailbox, Rule, Template
from server.services.templating import check_template

#: (name, locale, subject, text). An automatic answer goes in the customer's thread, so its subject is
#: always "Re: <their subject>" (Gmail threads only on a matching subject); the template's subject is
#: used for mail that starts a thread of its own (notifications).
DEFAULT_TEMPLATES: list[tuple[str, str, str, str]] = [
    (
        "Acknowledgement",
        "en",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Hello{% if customer.name %} {{ customer.name }}{% endif %},\n\n"
        "thank you for writing to {{ mailbox.name }}. Your request is ticket #{{ ticket.number }}.\n"
        "{% if ticket.first_response_due_at %}We will answer by {{ ticket.first_response_due_at }}."
        "{% else %}We will answer as soon as we can.{% endif %}\n\n"
        "To add anything, just reply to this email.\n\n{{ mailbox.name }}\n",
    ),
    (
        "Acknowledgement",
        "ru",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Здравствуйте{% if customer.name %}, {{ customer.name }}{% endif %}!\n\n"
        "Спасибо за обращение в {{ mailbox.name }}. Номер вашей заявки — #{{ ticket.number }}.\n"
        "{% if ticket.first_response_due_at %}Мы ответим до {{ ticket.first_response_due_at }}."
        "{% else %}Мы ответим как можно скорее.{% endif %}\n\n"
        "Чтобы что-то добавить, просто ответьте на это письмо.\n\n{{ mailbox.name }}\n",
    ),
    (
        "Password reset help",
        "en",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Hello{% if customer.name %} {{ customer.name }}{% endif %},\n\n"
        'to reset your password, open the sign-in page, choose "Forgot password?" and follow the link we '
        "email you (check the spam folder too). The link works for one hour.\n\n"
        "If that does not help, reply to this email and a person will take over ticket #{{ ticket.number }}.\n\n"
        "{{ mailbox.name }}\n",
    ),
    (
        "Password reset help",
        "ru",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Здравствуйте{% if customer.name %}, {{ customer.name }}{% endif %}!\n\n"
        "Чтобы сбросить пароль, откройте страницу входа, нажмите «Забыли пароль?» и перейдите по ссылке из "
        "письма (проверьте и папку «Спам»). Ссылка действует один час.\n\n"
        "Если это не помогло, ответьте на это письмо — заявкой #{{ ticket.number }} займётся сотрудник.\n\n"
        "{{ mailbox.name }}\n",
    ),
    (
        "Ticket solved",
        "en",
        "[#{{ ticket.number }}] Solved: {{ ticket.subject }}",
        "Hello{% if customer.name %} {{ customer.name }}{% endif %},\n\n"
        "we have marked ticket #{{ ticket.number }} as solved. If something is still not right, just reply "
        "and the ticket opens again.\n\n"
        "{% if csat.choices %}How did we do? One click is enough:\n"
        "{% for choice in csat.choices %}  {{ {'good': 'Good', 'okay': 'Okay', 'bad': 'Bad'}.get(choice.value, choice.value) }}: "
        "{{ choice.url }}\n{% endfor %}\n{% endif %}{{ mailbox.name }}\n",
    ),
    (
        "Ticket solved",
        "ru",
        "[#{{ ticket.number }}] Решено: {{ ticket.subject }}",
        "Здравствуйте{% if customer.name %}, {{ customer.name }}{% endif %}!\n\n"
        "Мы отметили заявку #{{ ticket.number }} как решённую. Если что-то ещё не так, просто ответьте "
        "на это письмо — заявка откроется снова.\n\n"
        "{% if csat.choices %}Как мы справились? Достаточно одного нажатия:\n"
        "{% for choice in csat.choices %}  {{ {'good': 'Хорошо', 'okay': 'Нормально', 'bad': 'Плохо'}.get(choice.value, choice.value) }}: "
        "{{ choice.url }}\n{% endfor %}\n{% endif %}{{ mailbox.name }}\n",
    ),
]

#: Reminders (server.flows.reminders). Agents read them in their own language and time zone; variables as
#: above plus ``reminder`` (``what``: "first response"/"resolution", ``due_at``) and, for the digest,
#: ``digest`` (``date``, ``open``, ``due_today``, ``overdue``: lists of tickets with ``number``,
#: ``subject``, ``due_at``, ``link``).
_TICKET_LINE_EN = "#{{ ticket.number }} {{ ticket.subject }}\n{{ ticket.link }}\n"
_TICKET_LINE_RU = _TICKET_LINE_EN
_DIGEST_LIST = (
    "{% for t in items %}  #{{ t.number }} {{ t.subject }}{% if t.due_at %} — {{ t.due_at }}{% endif %}\n"
    "{% endfor %}"
)
REMINDER_TEMPLATES: list[tuple[str, str, str, str]] = [
    (
        "Reminder: due soon",
        "en",
        "[#{{ ticket.number }}] {{ reminder.what | capitalize }} due {{ reminder.due_at }}",
        "The {{ reminder.what }} of ticket #{{ ticket.number }} is due {{ reminder.due_at }}.\n\n"
        + _TICKET_LINE_EN,
    ),
    (
        "Reminder: due soon",
        "ru",
        "[#{{ ticket.number }}] Срок ({{ reminder.what }}) — {{ reminder.due_at }}",
        "Срок по заявке #{{ ticket.number }} ({{ reminder.what }}) истекает {{ reminder.due_at }}.\n\n"
        + _TICKET_LINE_RU,
    ),
    (
        "Reminder: overdue",
        "en",
        "[#{{ ticket.number }}] Overdue: {{ reminder.what }} was due {{ reminder.due_at }}",
        "The {{ reminder.what }} of ticket #{{ ticket.number }} was due {{ reminder.due_at }} "
        "and has not happened yet.\n\n" + _TICKET_LINE_EN,
    ),
    (
        "Reminder: overdue",
        "ru",
        "[#{{ ticket.number }}] Просрочено: {{ reminder.what }} ({{ reminder.due_at }})",
        "Срок по заявке #{{ ticket.number }} ({{ reminder.what }}) истёк {{ reminder.due_at }}.\n\n"
        + _TICKET_LINE_RU,
    ),
    (
        "Reminder: escalation",
        "en",
        "[#{{ ticket.number }}] Still overdue: {{ reminder.what }} was due {{ reminder.due_at }}",
        "Ticket #{{ ticket.number }} is still overdue: its {{ reminder.what }} was due "
        "{{ reminder.due_at }}.\nAssignee: {{ ticket.assignee or 'nobody' }}.\n\n" + _TICKET_LINE_EN,
    ),
    (
        "Reminder: escalation",
        "ru",
        "[#{{ ticket.number }}] Всё ещё просрочено: {{ reminder.what }} ({{ reminder.due_at }})",
        "Заявка #{{ ticket.number }} всё ещё просрочена: {{ reminder.what }} — срок был "
        "{{ reminder.due_at }}.\nИсполнитель: {{ ticket.assignee or 'не назначен' }}.\n\n" + _TICKET_LINE_RU,
    ),
    (
        "Reminder: unassigned",
        "en",
        "[#{{ ticket.number }}] Nobody has taken this ticket yet",
        "Ticket #{{ ticket.number }} came in {{ ticket.created_at }} and nobody has taken it.\n\n"
        + _TICKET_LINE_EN,
    ),
    (
        "Reminder: unassigned",
        "ru",
        "[#{{ ticket.number }}] Заявку пока никто не взял",
        "Заявка #{{ ticket.number }} пришла {{ ticket.created_at }}, и её пока никто не взял.\n\n"
        + _TICKET_LINE_RU,
    ),
    (
        "Reminder: snooze ended",
        "en",
        "[#{{ ticket.number }}] Back from snooze: {{ ticket.subject }}",
        "Ticket #{{ ticket.number }} was snoozed until {{ reminder.due_at }} and is back in your queue.\n\n"
        + _TICKET_LINE_EN,
    ),
    (
        "Reminder: snooze ended",
        "ru",
        "[#{{ ticket.number }}] Отложенная заявка вернулась: {{ ticket.subject }}",
        "Заявка #{{ ticket.number }} была отложена до {{ reminder.due_at }} и снова в вашей очереди.\n\n"
        + _TICKET_LINE_RU,
    ),
    (
        "Daily digest",
        "en",
        "Your tickets on {{ digest.date }}: {{ digest.open | length }} open, {{ digest.overdue | length }} overdue",
        "Good morning{% if agent.name %}, {{ agent.name }}{% endif %}!\n\n"
        "{% if digest.overdue %}Overdue ({{ digest.overdue | length }}):\n"
        "{% with items = digest.overdue %}" + _DIGEST_LIST + "{% endwith %}\n{% endif %}"
        "{% if digest.due_today %}Due today ({{ digest.due_today | length }}):\n"
        "{% with items = digest.due_today %}" + _DIGEST_LIST + "{% endwith %}\n{% endif %}"
        "Open and assigned to you ({{ digest.open | length }}):\n"
        "{% with items = digest.open %}" + _DIGEST_LIST + "{% endwith %}\n{{ mailbox.name }}\n",
    ),
    (
        "Daily digest",
        "ru",
        "Ваши заявки на {{ digest.date }}: открыто {{ digest.open | length }}, "
        "просрочено {{ digest.overdue | length }}",
        "Доброе утро{% if agent.name %}, {{ agent.name }}{% endif %}!\n\n"
        "{% if digest.overdue %}Просрочены ({{ digest.overdue | length }}):\n"
        "{% with items = digest.overdue %}" + _DIGEST_LIST + "{% endwith %}\n{% endif %}"
        "{% if digest.due_today %}Срок сегодня ({{ digest.due_today | length }}):\n"
        "{% with items = digest.due_today %}" + _DIGEST_LIST + "{% endwith %}\n{% endif %}"
        "Открыты и назначены вам ({{ digest.open | length }}):\n"
        "{% with items = digest.open %}" + _DIGEST_LIST + "{% endwith %}\n{{ mailbox.name }}\n",
    ),
    (
        "Pending follow-up",
        "en",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Hello{% if customer.name %} {{ customer.name }}{% endif %},\n\n"
        "we are still waiting for your answer on ticket #{{ ticket.number }}. Whenever you are ready, "
        "just reply to this email and we will carry on.\n\n{{ mailbox.name }}\n",
    ),
    (
        "Pending follow-up",
        "ru",
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Здравствуйте{% if customer.name %}, {{ customer.name }}{% endif %}!\n\n"
        "Мы всё ещё ждём вашего ответа по заявке #{{ ticket.number }}. Когда будете готовы, просто "
        "ответьте на это письмо — и мы продолжим.\n\n{{ mailbox.name }}\n",
    ),
]
DEFAULT_TEMPLATES += REMINDER_TEMPLATES


def builtin_template(name: str, locale: str) -> Template | None:
    """The shipped template ``name`` (in ``locale``, else English), not stored anywhere."""
    shipped = {(n, loc): (subject, text) for n, loc, subject, text in DEFAULT_TEMPLATES}
    found = shipped.get((name, locale)) or shipped.get((name, "en"))
    if found is None:
        return None
    return Template(
        name=name, locale=locale if (name, locale) in shipped else "en", subject=found[0], body_text=found[1]
    )


PASSWORD_PATTERN = (
    r"(reset|forgot|forgotten|lost).{0,30}password|(сброс|сбросить|забыл|восстанов).{0,30}парол"
)

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "Password reset: answer and solve",
        "trigger": "ticket_created",
        "conditions": {
            "any": [
                {"field": "subject", "op": "matches", "value": PASSWORD_PATTERN},
                {"field": "body", "op": "matches", "value": PASSWORD_PATTERN},
            ]
        },
        "actions": [{"auto_reply": {"template": "Password reset help"}}, {"set_status": "solved"}],
        "stop_processing": True,
    },
    {
        # Replaces the urgent-words regex of earlier versions: urgency is read with its reasons
        # (server.services.knowledge.signals: negation, deadlines, follow-ups; docs/knowledge.md).
        "name": "High urgency makes a ticket urgent",
        "trigger": "ticket_created",
        "conditions": {"field": "urgency", "op": "equals", "value": "high"},
        "actions": [{"set_priority": "urgent"}, {"add_tag": "urgent"}],
    },
    {
        "name": "Spread new tickets round-robin",
        "trigger": "ticket_created",
        "actions": [{"assign": "round_robin"}],
    },
    {
        "name": "Acknowledge every new ticket",
        "trigger": "ticket_created",
        "actions": [{"auto_reply": {"template": "Acknowledgement"}}],
    },
    {
        # An acknowledgement may carry an FAQ answer (server.services.knowledge.faq); the customer's "this solved
        # it" click is this trigger.
        "name": "FAQ answer solved it: solve the ticket",
        "trigger": "faq_solved",
        "actions": [{"set_status": "solved"}, {"add_tag": "faq"}],
    },
    {
        "name": "Tell the customer when the ticket is solved",
        "trigger": "time",
        "conditions": {"field": "status", "op": "equals", "value": "solved"},
        "actions": [{"notify": {"to": ["customer"], "template": "Ticket solved"}}],
    },
]


def install_defaults(session: Session, mailbox: Mailbox) -> None:
    """Add the default templates and rules to a mailbox (no commit); existing names are left alone."""
    existing = {
        (t.name, t.locale) for t in session.scalars(select(Template).where(Template.mailbox_id == mailbox.id))
    }
    for name, locale, subject, text in DEFAULT_TEMPLATES:
        check_template(subject, text)
        if (name, locale) not in existing:
            session.add(
                Template(mailbox_id=mailbox.id, name=name, locale=locale, subject=subject, body_text=text)
            )
    replace_rules(session, mailbox, rule_engine.load_rules(DEFAULT_RULES), keep_existing=True)


def replace_rules(
    session: Session, mailbox: Mailbox, loaded: list[rule_engine.Rule], *, keep_existing: bool = False
) -> None:
    """Store ``loaded`` as the mailbox's rules, in order (no commit). A rule keeps its stored row (its
    id, so its history: last fired, the events it caused) when a rule of the same name was there."""
    current = list(
        session.scalars(select(Rule).where(Rule.mailbox_id == mailbox.id).order_by(Rule.position, Rule.id))
    )
    if keep_existing and current:
        return
    unused = list(current)
    for position, rule in enumerate(loaded):
        data = rule_engine.dump_rule(rule)
        row = next((r for r in unused if r.name == rule.name), None)
        if row is None:
            row = Rule(mailbox_id=mailbox.id, name=rule.name)
            session.add(row)
        else:
            unused.remove(row)
        row.trigger = rule.trigger.value
        row.conditions = data.get("conditions") or {}
        row.actions = data["actions"]
        row.position = position
        row.enabled = rule.enabled
        row.stop_processing = rule.stop_processing
    for row in unused:
        session.delete(row)
