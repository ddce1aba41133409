"""Cards as JSON in the Google Workspace add-on card v1 format (``GoogleAppsCardV1Card``).

Small builders for the widgets the add-on uses, and the responses of the add-on HTTP runtime
(``action.navigations`` with ``pushCard``/``updateCard``, notifications, ``updateDraftActionMarkup``).
The Apps Script shim (addon/) turns exactly these into CardService objects. Everything a person or a
customer wrote is HTML-escaped: card text understands a little HTML (``<b>``, ``<a>``, ``<font>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

#: Gmail's limits that the cards stay inside (a test checks every card the suite produces).
MAX_WIDGETS = 100
MAX_CARD_ACTIONS = 10
MAX_SELECTION_ITEMS = 50
MAX_TEXT = 2000

Json = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """How to call back: the action function (a name for Apps Script, a URL for the HTTP runtime)."""

    function: str


def text(value: object, limit: int = MAX_TEXT) -> str:
    """User content made safe for card text: escaped and cut to a length Gmail shows."""
    raw = str(value)
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return escape(raw, quote=False)


def action(caller: Caller, do: str, **parameters: object) -> Json:
    items = [{"key": "do", "value": do}] + [{"key": k, "value": str(v)} for k, v in parameters.items()]
    return {"action": {"function": caller.function, "parameters": items}}


def button(label: str, on_click: Json, *, filled: bool = False) -> Json:
    widget: Json = {"text": label, "onClick": on_click}
    if filled:
        widget["type"] = "FILLED"
    return widget


def buttons(*items: Json) -> Json:
    return {"buttonList": {"buttons": list(items)}}


def decorated(
    body: str,
    *,
    top: str | None = None,
    bottom: str | None = None,
    on_click: Json | None = None,
    wrap: bool = True,
) -> Json:
    widget: Json = {"text": body, "wrapText": wrap}
    if top:
        widget["topLabel"] = top
    if bottom:
        widget["bottomLabel"] = bottom
    if on_click:
        widget["onClick"] = on_click
    return {"decoratedText": widget}


def paragraph(body: str) -> Json:
    return {"textParagraph": {"text": body}}


def dropdown(name: str, label: str, options: list[tuple[str, str]], selected: str | None = None) -> Json:
    items = [
        {"text": title, "value": value, "selected": value == selected}
        for value, title in options[:MAX_SELECTION_ITEMS]
    ]
    return {"selectionInput": {"name": name, "label": label, "type": "DROPDOWN", "items": items}}


def text_input(name: str, label: str, *, multiline: bool = False) -> Json:
    return {
        "textInput": {"name": name, "label": label, "type": "MULTIPLE_LINE" if multiline else "SINGLE_LINE"}
    }


def date_time_picker(name: str, label: str, *, value_ms: int | None = None, offset_minutes: int = 0) -> Json:
    widget: Json = {
        "name": name,
        "label": label,
        "type": "DATE_AND_TIME",
        "timezoneOffsetDate": offset_minutes,
    }
    if value_ms is not None:
        widget["valueMsEpoch"] = str(value_ms)
    return {"dateTimePicker": widget}


def section(
    widgets: list[Json], header: str | None = None, *, collapsible: bool = False, keep: int = 0
) -> Json:
    result: Json = {"widgets": widgets}
    if header:
        result["header"] = header
    if collapsible:
        result["collapsible"] = True
        result["uncollapsibleWidgetsCount"] = keep
    return result


def card(title: str, sections: list[Json], *, subtitle: str | None = None, name: str | None = None) -> Json:
    header: Json = {"title": title}
    if subtitle:
        header["subtitle"] = subtitle
    result: Json = {"header": header, "sections": [s for s in sections if s["widgets"]]}
    if name:
        result["name"] = name
    return result


# --- responses ---------------------------------------------------------------------------------------
def push(card_json: Json) -> Json:
    """A trigger's answer: show this card."""
    return {"action": {"navigations": [{"pushCard": card_json}]}}


def push_navigation(card_json: Json) -> Json:
    """An action's answer: open this card on top of the current one (Back returns)."""
    return {"renderActions": {"action": {"navigations": [{"pushCard": card_json}]}}}


def update(card_json: Json, notification: str | None = None) -> Json:
    """An action's answer: replace the card on screen, optionally with a toast."""
    result: Json = {"navigations": [{"updateCard": card_json}]}
    if notification:
        result["notification"] = {"text": notification}
    return {"renderActions": {"action": result}}


def notify(message: str) -> Json:
    """An action's answer that keeps the card and shows a toast."""
    return {"renderActions": {"action": {"notification": {"text": message}}}}


def insert_into_draft(content: str, *, html: bool = False) -> Json:
    """A compose action's answer: insert ``content`` at the cursor of the draft."""
    return {
        "renderActions": {
            "hostAppAction": {
                "gmailAction": {
                    "updateDraftActionMarkup": {
                        "updateBody": {
                            "insertContents": [
                                {"content": content, "contentType": "MUTABLE_HTML" if html else "TEXT"}
                            ],
                            "type": "IN_PLACE_INSERT",
                        }
                    }
                }
            }
        }
    }


def cards_in(response: Json) -> list[Json]:
    """Every card inside a response (for the schema and limit tests)."""
    navigations = (response.get("action") or response.get("renderActions", {}).get("action") or {}).get(
        "navigations", []
    )
    return [n[k] for n in navigations for k in ("pushCard", "updateCard") if k in n]


def widget_count(card_json: Json) -> int:
    return sum(len(s.get("widgets", [])) for s in card_json.get("sections", []))
