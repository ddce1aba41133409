"""A mailbox's help-centre settings (``help_centre`` in its settings): whether its public help centre
is on, at which slug (``/help/<slug>/``), and whether it has the contact form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from server.base.models import Mailbox

#: The public help centre (server.faces.public.help): off until the admin chooses a slug and turns it on.
HELP_DEFAULTS: dict[str, Any] = {"enabled": False, "slug": None, "contact_form": True}
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def help_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["help_centre: expected {enabled, slug, contact_form}"]
    found = [f"help_centre.{key}: unknown setting" for key in value if key not in HELP_DEFAULTS]
    for flag in ("enabled", "contact_form"):
        if flag in value and not isinstance(value[flag], bool):
            found.append(f"help_centre.{flag}: true or false")
    slug = value.get("slug")
    if slug is not None and (not isinstance(slug, str) or not _SLUG.match(slug)):
        found.append("help_centre.slug: 1 to 40 lower-case letters, digits and hyphens (e.g. acme)")
    if value.get("enabled") is True and not slug:
        found.append("help_centre.slug: the help centre needs a slug to be on")
    return found


def help_settings(mailbox: Mailbox) -> dict[str, Any]:
    """The mailbox's help-centre settings with their defaults (a stored value that does not validate
    falls back to its default)."""
    stored = (mailbox.settings or {}).get("help_centre")
    merged = dict(HELP_DEFAULTS)
    if isinstance(stored, Mapping) and not help_problems(stored):
        merged |= {key: stored[key] for key in HELP_DEFAULTS if key in stored}
    return merged
