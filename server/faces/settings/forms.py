"""The settings forms (Flask-WTF: each carries its CSRF token; the services validate the values)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import DateField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from server.services.accounts import MAX_NAME_LENGTH
from server.services.knowledge import signals

LANGUAGES = [SelectChoice("en", "English"), SelectChoice("ru", "Русский")]


def role_choices() -> list[SelectChoice]:
    return [SelectChoice("agent", str(_l("Agent"))), SelectChoice("manager", str(_l("Manager"))),
            SelectChoice("admin", str(_l("Admin")))]  # fmt: skip


class ProfileForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=MAX_NAME_LENGTH)])
    locale = SelectField(_l("Language"), choices=LANGUAGES)
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)])
    away = BooleanField(_l("Away: keep my tickets, give me no new ones"))
    digest = BooleanField(_l("Send me the daily digest"))
    reminders = BooleanField(_l("Remind me of deadlines, unassigned and woken tickets"))
    mentions = BooleanField(_l("Tell me when someone mentions me in a note"))
    following = BooleanField(_l("Tell me about the tickets I follow, as their assignee is told"))
    weekly_report = BooleanField(_l("Send me the weekly report on Monday morning (managers and admins)"))
    version = HiddenField()


class InviteForm(FlaskForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=MAX_NAME_LENGTH)])
    role = SelectField(_l("Role"), choices=role_choices)
    mailboxes = SelectMultipleField(_l("Mailboxes"), choices=[])
    locale = SelectField(_l("Language"), choices=LANGUAGES)


class AgentForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=MAX_NAME_LENGTH)])
    role = SelectField(_l("Role"), choices=role_choices)
    mailboxes = SelectMultipleField(_l("Mailboxes"), choices=[])
    admin_of = SelectMultipleField(_l("Admin of these mailboxes (their settings only)"), choices=[])
    locale = SelectField(_l("Language"), choices=LANGUAGES)
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)])
    active = BooleanField(_l("Active (can sign in and get tickets)"))
    away = BooleanField(_l("Away (gets no new tickets)"))
    version = HiddenField()


class ReassignForm(FlaskForm):
    to = SelectField(_l("Give their open tickets to"), choices=[])


class MailboxSettingsForm(FlaskForm):
    locale = SelectField(_l("Language of the mail to customers"), choices=LANGUAGES)
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)])
    auto_replies_per_sender_per_hour = IntegerField(
        _l("Automatic replies to one sender per hour at most"),
        validators=[InputRequired(), NumberRange(0, 1000)],
    )
    assign_to_responder = BooleanField(
        _l("Assign to responder: an unassigned ticket an agent answers from Gmail becomes theirs")
    )
    acknowledge_splits = BooleanField(_l("Acknowledge a ticket split off another, as a new email would be"))
    semantic_search = BooleanField(
        _l(
            "Search by meaning: suggestions, FAQ answers and help-centre search find questions asked in other words"
        )
    )
    team_addresses = TextAreaField(
        _l("Team addresses (one a line): never customers, never answered automatically"),
        validators=[Length(max=200 * 322)],
    )
    csat_enabled = BooleanField(_l("Ask customers to rate a solved ticket (links in the solved mail)"))
    csat_scale = SelectField(
        _l("Rating"),
        choices=lambda: [
            SelectChoice("three", str(_l("Good / okay / bad"))),
            SelectChoice("five", str(_l("1 to 5"))),
        ],
    )
    csat_nps = BooleanField(_l("Also ask how likely they are to recommend us (NPS, 0 to 10)"))
    csat_days = IntegerField(_l("Links valid for (days)"), validators=[InputRequired(), NumberRange(1, 90)])
    faq_enabled = BooleanField(
        _l("Answer frequent questions in the acknowledgement (templates with example questions)")
    )
    faq_threshold = IntegerField(
        _l("…when the new ticket matches an example question by at least (%)"),
        validators=[Optional(), NumberRange(20, 100)],
    )
    labels_enabled = BooleanField(
        _l("Mirror each ticket in Gmail labels (status, assignee, overdue, urgent)")
    )
    labels_root = StringField(_l("Under the label"), validators=[Optional(), Length(max=40)])
    labels_archive = BooleanField(_l("Archive solved tickets (they come back with the customer's reply)"))
    help_centre_enabled = BooleanField(_l("A public help centre with this mailbox's published articles"))
    help_centre_slug = StringField(_l("Its address: /help/…/ (lower-case letters, digits, hyphens)"),
                                   validators=[Optional(), Length(max=40)])  # fmt: skip
    help_centre_contact_form = BooleanField(_l('With a contact form ("Still need help?")'))
    version = HiddenField()


class AddMailboxForm(FlaskForm):
    address = StringField(_l("Shared mailbox address"), validators=[DataRequired(), Length(max=320)])
    display_name = StringField(_l("Name customers see"), validators=[Optional(), Length(max=200)])
    key = FileField(_l("Service-account key (JSON) with domain-wide delegation"), validators=[FileRequired()])


class RuleSetForm(FlaskForm):
    text = TextAreaField(_l("The mailbox's rules (YAML, as postdesk rules export writes them)"),
                         validators=[Length(max=512 * 1024)])  # fmt: skip
    file = FileField(_l("Or a rules file to import"))


class DryRunForm(FlaskForm):
    last = IntegerField(_l("Try on the last tickets"), validators=[Optional(), NumberRange(1, 10_000)])
    since = DateField(_l("or those created from"), validators=[Optional()])
    until = DateField(_l("to"), validators=[Optional()])


class RuleMoveForm(FlaskForm):
    """Moving or switching a rule: a button, its CSRF token and nothing else."""


class TemplateForm(FlaskForm):
    """One language of a template (the page shows one per language, prefixed ``en-`` / ``ru-``)."""

    subject = StringField(_l("Subject"), validators=[Length(max=2000)])
    text = TextAreaField(_l("Text"), validators=[Length(max=100_000)])
    html = TextAreaField(_l("HTML (optional)"), validators=[Length(max=100_000)])
    questions = TextAreaField(
        _l("FAQ: example questions this template answers, one a line (empty: it is no FAQ answer)"),
        validators=[Length(max=30_000)],
    )
    version = HiddenField()


class PolicySetForm(FlaskForm):
    text = TextAreaField(_l("The mailbox's SLA policies (YAML, as postdesk sla policy-import reads them)"),
                         validators=[Length(max=256 * 1024)])  # fmt: skip


class RemindersForm(FlaskForm):
    enabled = BooleanField(_l("Send reminders for this mailbox"))
    warn_minutes = IntegerField(_l("Warn before a deadline (business minutes)"),
                                validators=[InputRequired(), NumberRange(0, 7 * 24 * 60)])  # fmt: skip
    escalate_minutes = IntegerField(_l("Tell the admins after a missed deadline (business minutes)"),
                                    validators=[InputRequired(), NumberRange(0, 7 * 24 * 60)])  # fmt: skip
    unassigned_minutes = IntegerField(_l("Remind the team of a ticket nobody took after (business minutes; 0: never)"),
                                      validators=[InputRequired(), NumberRange(0, 7 * 24 * 60)])  # fmt: skip
    snooze = BooleanField(_l("Tell the assignee when a snoozed ticket wakes up"))
    pending_followup_days = IntegerField(_l("Follow up with a customer who has not answered after (days; 0: never)"),
                                         validators=[InputRequired(), NumberRange(0, 365)])  # fmt: skip
    pending_autosolve_days = IntegerField(_l("Solve it that many days after the follow-up (0: never)"),
                                          validators=[InputRequired(), NumberRange(0, 365)])  # fmt: skip
    digest = BooleanField(_l("A daily digest to each agent"))
    digest_time = StringField(
        _l("at (in each agent's own time zone)"), validators=[DataRequired(), Length(max=5)]
    )
    version = HiddenField()


class ApiTokenForm(FlaskForm):
    name = StringField(_l("Name (what the token is for)"), validators=[DataRequired(), Length(max=200)])
    owner = SelectField(_l("For"), choices=[], coerce=str, validate_choice=False)  # checked by the view
    scopes = SelectMultipleField(_l("Scopes"), choices=[])
    expires = DateField(_l("Expires on (empty: never)"), validators=[Optional()])


class WebhookForm(FlaskForm):
    url = StringField(_l("Address (https://…)"), validators=[DataRequired(), Length(max=2000)])
    events = SelectMultipleField(_l("Events"), choices=[])
    enabled = BooleanField(_l("On"), default=True)


def signal_field(language: str, category: str) -> str:
    """The form field of a language's list of a category (``en_urgent``)."""
    return f"{language}_{category}"


class SignalWordsForm(FlaskForm):
    """A mailbox's own urgency and tone words: one text area per language and category."""

    version = HiddenField()


for _language in signals.LANGUAGES:
    for _category in signals.EXTENSIBLE:
        setattr(
            SignalWordsForm, signal_field(_language, _category), TextAreaField(f"{_language}.{_category}")
        )


class ForgetCustomerForm(FlaskForm):
    email = StringField(_l("The customer's email address"), validators=[DataRequired(), Length(max=320)])
    confirm = BooleanField(_l("I understand: their mail's text and address are removed for good"))
