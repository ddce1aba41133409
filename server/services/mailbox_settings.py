"""Per-mailbox settings (``Mailbox.settings``): their defaults, their validation, and typed views.

Settings are saved only whole and valid (:func:`validate` lists every problem, as the CLI and the
settings page show them); readers never trust what is stored, though: a value that no longer
validates falls back to its default, so a bad setting can never stop the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Locale, Mailbox
from server.services.help_settings import help_problems, help_settings
from server.services.knowledge.related import problems as related_problems
from server.services.sla import CalendarError, calendar_from_config
from server.services.tickets import SYSTEM, Actor, record_event, refresh_mailbox

log = logging.getLogger(__name__)

#: Reminder defaults: warnings and escalations in business minutes, the pending follow-up in days.
REMINDER_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "warn_minutes": 30,  # before a first-response or resolution deadline
    "escalate_minutes": 60,  # after a deadline, when the admins hear of it too
    "unassigned_minutes": 60,  # 0: no reminder for unassigned tickets
    "snooze": True,  # tell the assignee when a snoozed ticket wakes up
    "pending_followup_days": 3,  # 0: no follow-up to a customer who has not answered
    "pending_autosolve_days": 0,  # days after the follow-up; 0: never solve automatically
    "digest": True,
    "digest_time": "09:00",  # in each agent's own time zone
}
DEFAULTS: dict[str, Any] = {
    "locale": Locale.EN.value,
    "timezone": "UTC",
    "auto_replies_per_sender_per_hour": 3,
    #: Addresses of the team besides the agents' (a colleague's own mailbox, a sister team's):
    #: never taken for customers, never answered automatically.
    "team_addresses": [],
    #: An unassigned ticket an agent answers from Gmail (the reply filed by sync) becomes theirs.
    "assign_to_responder": False,
    #: A ticket split off another (server.services.tickets.splitting) gets the acknowledgement too.
    "acknowledge_splits": False,
    #: Suggestions, FAQ answers and help-centre search find by meaning too (knowledge/meaning.py).
    "semantic_search": True,
}
#: Customer satisfaction: the rating links in mail (server.services.csat).
CSAT_DEFAULTS: dict[str, Any] = {"enabled": True, "scale": "three", "days": 14, "nps": False}
#: The longest a rating link may stay valid (days).
CSAT_MAX_DAYS = 90
#: The choices of each rating scale, best first, with their score on one 1–5 scale.
CSAT_SCALES: dict[str, dict[str, int]] = {
    "three": {"good": 5, "okay": 3, "bad": 1},
    "five": {"5": 5, "4": 4, "3": 3, "2": 2, "1": 1},
}
#: The most team addresses a mailbox keeps.
MAX_TEAM_ADDRESSES = 200
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_LIMITS = {
    "warn_minutes": 7 * 24 * 60,
    "escalate_minutes": 7 * 24 * 60,
    "unassigned_minutes": 7 * 24 * 60,
    "pending_followup_days": 365,
    "pending_autosolve_days": 365,
}


class SettingsError(ValueError):
    """Settings that cannot be saved; ``problems`` lists every reason with the setting's name."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def setting(mailbox: Mailbox, name: str) -> Any:
    """One top-level setting of the mailbox, or its default."""
    return (mailbox.settings or {}).get(name, DEFAULTS[name])


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _reminder_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["reminders: expected a mapping of reminder settings"]
    problems = [f"reminders.{key}: unknown setting" for key in value if key not in REMINDER_DEFAULTS]
    for key, limit in _LIMITS.items():
        if key in value and not _whole(value[key], 0, limit):
            problems.append(f"reminders.{key}: a whole number from 0 to {limit}")
    for key in ("enabled", "snooze", "digest"):
        if key in value and not isinstance(value[key], bool):
            problems.append(f"reminders.{key}: true or false")
    if "digest_time" in value and not (
        isinstance(value["digest_time"], str) and _TIME.match(value["digest_time"])
    ):
        problems.append('reminders.digest_time: a time of day like "09:00"')
    return problems


def _csat_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["csat: expected {enabled, scale: three|five, days, nps}"]
    found = [f"csat.{key}: unknown setting" for key in value if key not in CSAT_DEFAULTS]
    for flag in ("enabled", "nps"):
        if flag in value and not isinstance(value[flag], bool):
            found.append(f"csat.{flag}: true or false")
    if "scale" in value and value["scale"] not in CSAT_SCALES:
        found.append("csat.scale: three (good / okay / bad) or five (1 to 5)")
    if "days" in value and not _whole(value["days"], 1, CSAT_MAX_DAYS):
        found.append(f"csat.days: a whole number of days from 1 to {CSAT_MAX_DAYS}")
    return found


#: Ticket state mirrored in Gmail labels (server.services.labels): off until an admin turns it on.
LABEL_DEFAULTS: dict[str, Any] = {"enabled": False, "root": "Postdesk", "archive_on_solve": False}
#: Gmail's own labels: no root may be named like one.
SYSTEM_LABELS = frozenset(
    {"INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "UNREAD", "STARRED", "IMPORTANT", "CHAT"}
)
_LABEL_ROOT = re.compile(r"^[^/\s](?:[^/]*[^/\s])?$")


def _label_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["gmail_labels: expected {enabled, root, archive_on_solve}"]
    found = [f"gmail_labels.{key}: unknown setting" for key in value if key not in LABEL_DEFAULTS]
    for flag in ("enabled", "archive_on_solve"):
        if flag in value and not isinstance(value[flag], bool):
            found.append(f"gmail_labels.{flag}: true or false")
    root = value.get("root", LABEL_DEFAULTS["root"])
    if (
        not isinstance(root, str)
        or not _LABEL_ROOT.match(root)
        or len(root) > 40
        or root.upper() in SYSTEM_LABELS
    ):
        found.append("gmail_labels.root: a label name of at most 40 characters, without '/' (e.g. Postdesk)")
    return found


def label_settings(mailbox: Mailbox) -> dict[str, Any]:
    """The mailbox's label settings with their defaults (a stored value that does not validate falls
    back to its default)."""
    stored = (mailbox.settings or {}).get("gmail_labels")
    merged = dict(LABEL_DEFAULTS)
    if isinstance(stored, Mapping):
        for key, value in stored.items():
            if key in merged and not _label_problems({key: value}):
                merged[key] = value
    return merged


def csat_settings(mailbox: Mailbox) -> dict[str, Any]:
    """The mailbox's rating settings with their defaults (a stored value that does not validate falls
    back to its default, as reminders do)."""
    stored = (mailbox.settings or {}).get("csat")
    merged = dict(CSAT_DEFAULTS)
    if isinstance(stored, Mapping):
        for key, value in stored.items():
            if key in merged and not _csat_problems({key: value}):
                merged[key] = value
    return merged


#: FAQ answers in acknowledgements (server.services.knowledge.faq): on, and how close a new ticket's text must
#: be to one of a template's example questions (0–1) for its answer to go out.
FAQ_DEFAULTS: dict[str, Any] = {"enabled": True, "threshold": 0.5}
FAQ_LOWEST, FAQ_HIGHEST = 0.2, 1.0


def _faq_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["faq: expected {enabled, threshold}"]
    found = [f"faq.{key}: unknown setting" for key in value if key not in FAQ_DEFAULTS]
    if "enabled" in value and not isinstance(value["enabled"], bool):
        found.append("faq.enabled: true or false")
    threshold = value.get("threshold", FAQ_DEFAULTS["threshold"])
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not FAQ_LOWEST <= threshold <= FAQ_HIGHEST
    ):
        found.append(f"faq.threshold: a number from {FAQ_LOWEST} to {FAQ_HIGHEST}")
    return found


def faq_settings(mailbox: Mailbox) -> dict[str, Any]:
    """The mailbox's FAQ settings with their defaults (a stored value that does not validate falls back)."""
    stored = (mailbox.settings or {}).get("faq")
    merged = dict(FAQ_DEFAULTS)
    if isinstance(stored, Mapping):
        for key, value in stored.items():
            if key in merged and not _faq_problems({key: value}):
                merged[key] = value
    return merged


#: Words an admin adds to the shipped urgency and tone lists (server.services.knowledge.signals), per language
#: and category: at most this many per category, each at most this long.
SIGNAL_WORDS_MOST, SIGNAL_WORD_LENGTH = 300, 200


def _signal_word_problems(value: Any) -> list[str]:
    from server.services.knowledge.signals import EXTENSIBLE, LANGUAGES, SignalWordsError, lexicon

    if not isinstance(value, Mapping):
        return ["signal_words: expected {en: {urgent: [...], ...}, ru: {...}}"]
    found = []
    for language, lists in value.items():
        if language not in LANGUAGES:
            found.append(f"signal_words.{language}: a language of {list(LANGUAGES)}")
            continue
        if not isinstance(lists, Mapping):
            found.append(f"signal_words.{language}: expected categories with lists of words")
            continue
        for category, words in lists.items():
            where = f"signal_words.{language}.{category}"
            if category not in EXTENSIBLE:
                found.append(f"{where}: a category of {list(EXTENSIBLE)}")
            elif not isinstance(words, list) or len(words) > SIGNAL_WORDS_MOST:
                found.append(f"{where}: a list of at most {SIGNAL_WORDS_MOST} words")
            else:
                found += [
                    f"{where}: {str(word)[:40]!r} is not text of 1 to {SIGNAL_WORD_LENGTH} characters"
                    for word in words
                    if not isinstance(word, str) or not word.strip() or len(word) > SIGNAL_WORD_LENGTH
                ]
    if not found:
        try:
            lexicon(value)
        except SignalWordsError as exc:
            found.append(f"signal_words.{exc}")
    return found


def signal_words(mailbox: Mailbox) -> dict[str, Any]:
    """The words the mailbox's admins added to the shipped lists ({} when none, or none that validate)."""
    stored = (mailbox.settings or {}).get("signal_words")
    return dict(stored) if isinstance(stored, Mapping) and not _signal_word_problems(stored) else {}


def validate(data: Any) -> dict[str, Any]:
    """The settings as they will be stored, or :class:`SettingsError` listing every problem."""
    if not isinstance(data, Mapping):
        raise SettingsError(["settings: expected a mapping (locale, timezone, calendar, reminders …)"])
    known = set(DEFAULTS) | {
        "calendar",
        "reminders",
        "csat",
        "gmail_labels",
        "signal_words",
        "faq",
        "help_centre",
        "related_words",
    }
    problems = [f"{key}: unknown setting" for key in data if key not in known]
    if "locale" in data and data["locale"] not in {loc.value for loc in Locale}:
        problems.append(f"locale: one of {[loc.value for loc in Locale]}")
    if "timezone" in data:
        try:
            ZoneInfo(str(data["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: unknown time zone {data['timezone']!r}")
    if "auto_replies_per_sender_per_hour" in data and not _whole(
        data["auto_replies_per_sender_per_hour"], 0, 1000
    ):
        problems.append("auto_replies_per_sender_per_hour: a whole number from 0 to 1000")
    for switch in ("assign_to_responder", "acknowledge_splits", "semantic_search"):
        if switch in data and not isinstance(data[switch], bool):
            problems.append(f"{switch}: true or false")
    if "team_addresses" in data:
        addresses = data["team_addresses"]
        if not isinstance(addresses, list) or len(addresses) > MAX_TEAM_ADDRESSES:
            problems.append(f"team_addresses: a list of at most {MAX_TEAM_ADDRESSES} email addresses")
        else:
            for address in addresses:
                if not isinstance(address, str) or len(address) > 320 or not _EMAIL.match(address.strip()):
                    problems.append(f"team_addresses: not an email address: {str(address)[:80]!r}")
    if data.get("calendar") is not None:
        try:
            calendar_from_config(data["calendar"])
        except CalendarError as exc:
            problems += [f"calendar: {problem}" for problem in exc.problems]
    if "reminders" in data:
        problems += _reminder_problems(data["reminders"])
    if "csat" in data:
        problems += _csat_problems(data["csat"])
    if "gmail_labels" in data:
        problems += _label_problems(data["gmail_labels"])
    if "signal_words" in data:
        problems += _signal_word_problems(data["signal_words"])
    if "faq" in data:
        problems += _faq_problems(data["faq"])
    if "help_centre" in data:
        problems += help_problems(data["help_centre"])
    if "related_words" in data:
        problems += related_problems(data["related_words"])
    if problems:
        raise SettingsError(problems)
    cleaned = dict(data)
    if "team_addresses" in cleaned:
        cleaned["team_addresses"] = sorted({a.strip().lower() for a in cleaned["team_addresses"]})
    return cleaned


class StaleSettings(SettingsError):
    """The settings changed since the form was opened: nothing was saved."""


def version(mailbox: Mailbox) -> str:
    """A fingerprint of the stored settings: a form saved over another version is refused."""
    stored = json.dumps(mailbox.settings or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def save(
    session: Session,
    mailbox: Mailbox,
    data: Any,
    *,
    actor: Actor = SYSTEM,
    batch: int,
    expected_version: str | None = None,
) -> int:
    """Replace the mailbox's settings with ``data`` (validated whole; :class:`SettingsError` lists
    every problem and nothing changes), record the change as an event and re-time the open tickets.
    Returns how many were re-timed. The CLI and the settings page both save through here; the page
    passes the ``expected_version`` it showed (:class:`StaleSettings` when another change came first)."""
    if expected_version is not None and expected_version != version(mailbox):
        raise StaleSettings([f"settings of {mailbox.address} were changed by someone else meanwhile"])
    settings = validate(data)
    slug = (settings.get("help_centre") or {}).get("slug")
    if slug and any(
        help_settings(other)["slug"] == slug
        for other in session.scalars(select(Mailbox))
        if other.id != mailbox.id
    ):
        raise SettingsError([f"help_centre.slug: {slug!r} is another mailbox's help centre"])
    before = dict(mailbox.settings or {})
    mailbox.settings = settings
    if settings != before:
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        record_event(
            session,
            None,
            "mailbox_settings_changed",
            actor=actor,
            mailbox_id=mailbox.id,
            before={k: before.get(k) for k in changed} | {"mailbox": mailbox.address},
            after={k: settings.get(k) for k in changed} | {"mailbox": mailbox.address},
        )
    return refresh_mailbox(session, mailbox, at=datetime.now(UTC), batch=batch)


@dataclass(frozen=True)
class ReminderSettings:
    enabled: bool
    warn_minutes: int
    escalate_minutes: int
    unassigned_minutes: int
    snooze: bool
    pending_followup_days: int
    pending_autosolve_days: int
    digest: bool
    digest_time: time


def reminder_settings(mailbox: Mailbox) -> ReminderSettings:
    """The mailbox's reminder settings; a stored value that does not validate is replaced by its default."""
    stored = (mailbox.settings or {}).get("reminders")
    stored = stored if isinstance(stored, Mapping) else {}
    values = dict(REMINDER_DEFAULTS)
    for key, value in stored.items():
        if key in values and not _reminder_problems({key: value}):
            values[key] = value
        elif key in values:
            log.warning("reminder_setting_invalid mailbox=%s setting=%s", mailbox.id, key)
    hour, minute = (int(part) for part in str(values.pop("digest_time")).split(":"))
    return ReminderSettings(digest_time=time(hour, minute), **values)
