"""The reminders page: each setting with its effect in words, saved whole through the settings service;
the team's own choices shown; read-only for those who do not manage the mailbox."""

from __future__ import annotations

import re

from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Mailbox

FORM = {"enabled": "y", "warn_minutes": "45", "escalate_minutes": "90", "unassigned_minutes": "0",
        "pending_followup_days": "2", "pending_autosolve_days": "5", "digest": "y", "digest_time": "08:30"}  # fmt: skip


def _version(page: str) -> str:
    return re.search(r'name="version" type="hidden" value="([^"]+)"', page)[1]


def test_reminder_settings_are_saved_and_said_in_words(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    url = f"/settings/reminders?mailbox={team['mailbox']}"
    shown = client.get(url).get_data(as_text=True)

    bad = client.post(url, data={**FORM, "digest_time": "25:99", "version": _version(shown),
                                 "csrf_token": csrf_token(client)})  # fmt: skip
    saved = client.post(url, data={**FORM, "version": _version(shown), "csrf_token": csrf_token(client)},
                        follow_redirects=True)  # fmt: skip

    assert "30 business minutes before" in shown  # the defaults, in words
    assert bad.status_code == 400 and re.search(
        r'id="digest_time-error">a time of day', bad.get_data(as_text=True)
    )
    page = saved.get_data(as_text=True)
    assert "Reminder settings saved" in page
    assert "Admin gets a reminder 45 business minutes before" in page
    said = re.search(r'<section id="effects">(.*?)</section>', page, re.S)[1]
    assert "nobody took" not in said  # unassigned reminders off: not said
    assert "at 08:30" in page and "2 days gets a follow-up" in page and "5 days after the follow-up" in page
    with web.app_context():
        stored = get_session().get(Mailbox, team["mailbox"]).settings["reminders"]
        assert stored["warn_minutes"] == 45 and stored["snooze"] is False and stored["digest_time"] == "08:30"


def test_the_team_reads_the_reminder_page_and_each_persons_choices(web, google, team):
    from server.services.accounts import AgentChange, update_agent

    with web.app_context():
        update_agent(get_session(), "agent@example.com", AgentChange(notifications={"digest": False}))
    client = web.test_client()
    sign_in(client, google, "agent@example.com")

    page = client.get(f"/settings/reminders?mailbox={team['mailbox']}").get_data(as_text=True)
    refused = client.post(f"/settings/reminders?mailbox={team['mailbox']}",
                          data={**FORM, "csrf_token": csrf_token(client)})  # fmt: skip

    row = re.search(r"<tr><td>Agent</td>.*?</tr>", page, re.S)[0]
    assert "<td>no</td>" in row and "<td>yes</td>" in row  # no digest, reminders on
    assert "<fieldset disabled>" in page and 'id="save-reminders"' not in page
    assert refused.status_code == 403
