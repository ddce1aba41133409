"""Email templates: Jinja's sandbox, strict variables, ru/en dates, errors that name their line.

A template has a subject, a plain-text body and an optional HTML body. Variables: ``customer``
(name, email), ``ticket`` (number, subject, status, priority, due times already formatted in the
reader's language), ``agent`` (name, email) and ``mailbox`` (address, name). Rendering either
returns every part or raises :class:`TemplateError`; nothing is ever half-rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Longest template text accepted (each of subject, text, HTML).
MAX_TEMPLATE_CHARS = 100_000
#: The longest text or sequence an expression may build (``'x' * n``), and the largest exponent.
MAX_BUILT = 1_000_000
MAX_EXPONENT = 1_000
#: Compiled templates kept in memory (by their text), for all mailboxes together.
COMPILED_TEMPLATES = 512


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, and ``*`` and ``**`` that cannot build a gigabyte or spin on a huge
    power (the sandbox bounds ``range`` already)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | list | tuple)
                    and isinstance(times, int)
                    and not isinstance(times, bool)
                ) and len(sized) * max(times, 0) > MAX_BUILT:
                    raise SecurityError(f"that would build more than {MAX_BUILT:,} items")
        return super().call_binop(context, operator, left, right)


_TEXT_ENV = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_HTML_ENV = BoundedSandbox(undefined=StrictUndefined, autoescape=True)


class TemplateError(ValueError):
    """A template cannot be compiled or rendered; the message names the part and the line."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


def _line_of(tb: TracebackType | None, filename: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@lru_cache(maxsize=COMPILED_TEMPLATES)
def _compiled(source: str, html: bool) -> Template:
    """The compiled template of ``source`` (compiling costs far more than rendering: a mailbox's
    acknowledgement is compiled once, not once per new ticket)."""
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _render_part(source: str, part: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"{part}: longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        template = _compiled(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{part}, line {exc.lineno}: {exc.message}") from exc
    try:
        return template.render(**context)
    except (
        JinjaError,
        SecurityError,
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
        LookupError,
    ) as exc:
        line = _line_of(exc.__traceback__, "<template>")
        where = f", line {line}" if line else ""
        raise TemplateError(f"{part}{where}: {exc}") from exc


def check_template(subject: str, text: str, html: str | None = None) -> None:
    """Raise :class:`TemplateError` if any part does not compile (used before saving)."""
    for source, part, is_html in (
        (subject, "subject", False),
        (text, "text", False),
        (html or "", "html", True),
    ):
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"{part}: longer than {MAX_TEMPLATE_CHARS} characters")
        env = _HTML_ENV if is_html else _TEXT_ENV
        try:
            env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{part}, line {exc.lineno}: {exc.message}") from exc


def render_mail(subject: str, text: str, html: str | None, context: Mapping[str, Any]) -> RenderedMail:
    """Render all parts, or raise :class:`TemplateError` naming the part and line that failed."""
    rendered_subject = " ".join(_render_part(subject, "subject", context).split())[:998]
    rendered_text = _render_part(text, "text", context)
    rendered_html = _render_part(html, "html", context, html=True) if html else None
    return RenderedMail(rendered_subject, rendered_text, rendered_html)


def format_when(value: datetime | None, locale: str, timezone: str) -> str:
    """A date and time for a reader: "23 ноября 2026 г., 14:00" / "Nov 23, 2026, 2:00 PM"."""
    if value is None:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    pattern = _WHEN_PATTERNS.get(locale, _WHEN_PATTERNS["en"])
    return format_datetime(value, pattern, tzinfo=zone, locale=locale if locale in _WHEN_PATTERNS else "en")


_WHEN_PATTERNS = {"ru": "d MMMM y, HH:mm z", "en": "MMMM d, y, h:mm a z"}
