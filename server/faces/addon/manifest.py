"""The files Google reads about the add-on, made from the settings instead of edited by hand.

* :func:`deployment` — the HTTP runtime's deployment file (``gcloud workspace-add-ons deployments
  create --deployment-file``): a ``google.cloud.gsuiteaddons.v1.Deployment`` whose ``addOns`` are
  ``google.apps.script.type`` messages. Every trigger is a URL of this backend.
* :func:`manifest` — ``appsscript.json`` for the Apps Script shim: the Apps Script manifest's own
  shape (https://developers.google.com/apps-script/manifest), whose triggers name shim functions and
  whose URL-bearing fields (``urlFetchWhitelist``, ``logoUrl``, ``openLinkUrlPrefixes``) are this
  backend's; :func:`shim_config` is ``addon/Config.js``, the shim's backend URL.

The files in the repository are these functions' output for :data:`EXAMPLE_URL` (a test keeps them
so); ``postdesk addon deployment|manifest`` writes them for a real URL, which must be https outside
demo mode.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from server.faces.addon.call import URL_PREFIX

#: What the repository's copies name, and what demo mode writes when no URL is configured.
EXAMPLE_URL = "https://postdesk.example.com"

NAME = "Postdesk"
QUEUE_LABEL = "My queue · Мои заявки"
SETTINGS_LABEL = "Settings · Настройки"
COMPOSE_LABEL = "Postdesk template · Шаблон Postdesk"

#: Scopes both runtimes ask for, and why: docs/addon.md.
SCOPES = [
    "https://www.googleapis.com/auth/gmail.addons.execute",
    "https://www.googleapis.com/auth/gmail.addons.current.message.metadata",
    "https://www.googleapis.com/auth/gmail.addons.current.action.compose",
    "https://www.googleapis.com/auth/userinfo.email",
    "openid",
]
#: The Apps Script shim calls the backend with UrlFetchApp, which needs this one more.
SHIM_SCOPES = [*SCOPES[:3], "https://www.googleapis.com/auth/script.external_request", *SCOPES[3:]]

#: The routes Google (HTTP runtime) or the shim calls: :mod:`server.faces.addon.views`.
ROUTES = {name: f"{URL_PREFIX}/{name}" for name in ("homepage", "message", "compose", "action")}


class UrlError(ValueError):
    """A base URL the add-on files cannot name (says why)."""


def base_url(url: str, *, demo: bool) -> str:
    """``url`` as the files name it (scheme and host, no trailing slash), or :class:`UrlError`.

    https always; plain http only in demo mode (the previewer on loopback)."""
    parts = urlsplit(url.strip())
    allowed = ("https", "http") if demo else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise UrlError(f"{url!r} is not an https:// URL" + ("" if demo else " (http is for demo mode only)"))
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UrlError(f"{url!r}: give the base URL only (no query, fragment or user)")
    if any(ch.isspace() or ch in "\"'<>\\" for ch in url.strip()):
        raise UrlError(f"{url!r} has characters a URL cannot have")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def deployment(url: str) -> dict[str, Any]:
    """The HTTP deployment of the add-on whose backend is ``url`` (already checked by :func:`base_url`)."""
    return {
        "oauthScopes": list(SCOPES),
        "addOns": {
            "common": {
                "name": NAME,
                "logoUrl": f"{url}/static/logo.png",
                "useLocaleFromApp": True,
                "openLinkUrlPrefixes": [f"{url}/"],
                "homepageTrigger": {"runFunction": url + ROUTES["homepage"]},
                "universalActions": [{"label": QUEUE_LABEL, "runFunction": url + ROUTES["homepage"]}],
            },
            "gmail": {
                "contextualTriggers": [{"unconditional": {}, "onTriggerFunction": url + ROUTES["message"]}],
                "composeTrigger": {
                    "actions": [
                        {
                            "runFunction": url + ROUTES["compose"],
                            "label": COMPOSE_LABEL,
                            "logoUrl": f"{url}/static/logo.png",
                        }
                    ],  # fmt: skip
                    "draftAccess": "METADATA",
                },
            },
            # Google signs each call with the add-on's service account for the URL called.
            "httpOptions": {"authorizationHeader": "SYSTEM_ID_TOKEN"},
        },
    }


def manifest(url: str) -> dict[str, Any]:
    """``appsscript.json`` of the Apps Script shim whose backend is ``url``."""
    return {
        "timeZone": "Etc/UTC",
        "runtimeVersion": "V8",
        "exceptionLogging": "STACKDRIVER",
        "oauthScopes": list(SHIM_SCOPES),
        "urlFetchWhitelist": [f"{url}/"],
        "addOns": {
            "common": {
                "name": NAME,
                "logoUrl": f"{url}/static/logo.png",
                "layoutProperties": {"primaryColor": "#1a73e8", "secondaryColor": "#188038"},
                "useLocaleFromApp": True,
                "openLinkUrlPrefixes": [f"{url}/"],
                "homepageTrigger": {"runFunction": "onHomepage", "enabled": True},
                "universalActions": [
                    {"label": QUEUE_LABEL, "runFunction": "onMyQueue"},
                    {"label": SETTINGS_LABEL, "runFunction": "onSettings"},
                ],
            },
            "gmail": {
                "contextualTriggers": [{"unconditional": {}, "onTriggerFunction": "onGmailMessage"}],
                "composeTrigger": {
                    "selectActions": [{"text": COMPOSE_LABEL, "runFunction": "onGmailCompose"}],
                    "draftAccess": "METADATA",
                },
            },
        },
    }


def shim_config(url: str) -> str:
    """``addon/Config.js``: the backend the shim calls (the script property POSTDESK_URL overrides it)."""
    return (
        "/** Written by `postdesk addon manifest`: the Postdesk backend this shim calls. */\n"
        f"var POSTDESK_BACKEND_URL = {json.dumps(url + '/')};\n"
    )


def as_text(document: dict[str, Any]) -> str:
    """A document as the files hold it: two-space JSON, UTF-8 text kept as is, a final newline."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
