"""The urgency and tone words page: read a sample, add a mailbox's own words, bad ones refused."""

from __future__ import annotations

from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Mailbox


def test_a_mailbox_admin_adds_words_and_a_sample_reads_with_them(web, google, team):
    client = web.test_client()
    sign_in(client, google, "boxadmin@example.com")
    page = f"/settings/signals?mailbox={team['mailbox']}"
    before = client.get(f"{page}&sample=The pager alarm went off").get_data(as_text=True)
    assert "Normal urgency" in before and "outage" in before  # the shipped words are listed
    token = csrf_token(client, page)
    saved = client.post(
        page, data={"csrf_token": token, "en_urgent": "pager alarm\n\n", "ru_negative": "жесть"}
    )
    assert saved.status_code == 302
    after = client.get(f"{page}&sample=The pager alarm went off").get_data(as_text=True)
    assert 'id="reading"' in after and "Urgent" in after and "pager alarm" in after
    with web.app_context():
        box = get_session().scalar(select(Mailbox))
        assert box.settings["signal_words"] == {
            "en": {"urgent": ["pager alarm"]},
            "ru": {"negative": ["жесть"]},
        }


def test_a_bad_pattern_is_refused_at_its_field_and_nothing_changes(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    page = f"/settings/signals?mailbox={team['mailbox']}"
    token = csrf_token(client, page)
    refused = client.post(page, data={"csrf_token": token, "en_deadlines": "(by", "en_urgent": "fine words"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "not a pattern" in text
    punctuation = client.post(page, data={"csrf_token": token, "ru_urgent": "!!!"})
    assert punctuation.status_code == 400 and "has no words" in punctuation.get_data(as_text=True)
    with web.app_context():
        assert "signal_words" not in (get_session().scalar(select(Mailbox)).settings or {})


def test_an_agent_reads_the_page_but_cannot_save(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    page = f"/settings/signals?mailbox={team['mailbox']}"
    text = client.get(page).get_data(as_text=True)
    assert 'id="save-words"' not in text
    assert (
        client.post(page, data={"csrf_token": csrf_token(client, page), "en_urgent": "x"}).status_code == 403
    )
