"""One requirement's outcome, and how it is written."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

#: Seconds each outside call may take.
LIVE_TIMEOUT = 10
DOCS = "docs/deployment.md"


@dataclass(frozen=True)
class Check:
    """One requirement: ``ok`` True (✓), False (✗) or None (not checked: it needs ``--live``)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    docs: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "–"}[self.ok]

    def line(self) -> str:
        parts = [f"{self.mark} {self.name}: {self.detail}"]
        if self.ok is False and self.fix:
            parts.append(f"fix: {self.fix}")
        if self.ok is False and self.docs:
            parts.append(f"see {self.docs}")
        return " — ".join(parts)


def good(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def bad(name: str, detail: str, fix: str, section: str) -> Check:
    return Check(name, False, detail, fix, f"{DOCS}#{section}")


def unchecked(name: str) -> Check:
    return Check(name, None, _("not checked (run with --live)"))
