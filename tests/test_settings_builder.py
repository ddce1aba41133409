"""The rule builder: an admin builds "subject contains «срочно» or «urgent» → priority urgent + tag
urgent" row by row, sees it in YAML, dry-runs it (nothing changes) and saves it; a stored rule opened
in the builder and saved unchanged stays the same rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Event, Mailbox, Rule
from server.services import tickets
from server.services.automation import load_mailbox_rules


def _fields(page: str) -> dict[str, str]:
    """The builder form's current fields, as a browser would send them."""
    form = page.split('id="builder"', 1)[1].split("</form>", 1)[0]
    fields: dict[str, str] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        fields[name] = value
    for name, value in re.findall(r'<input type="(?:text|number)"[^>]*name="([^"]+)" value="([^"]*)"', form):
        fields[name] = value
    for name, body in re.findall(r'<select name="([^"]+)">(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body) or re.search(
            r'<option value="([^"]*)"', body
        )
        fields[name] = chosen[1] if chosen else ""
    for name, body in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        fields[name] = body
    for name in re.findall(r'<input type="checkbox" name="([^"]+)" value="y" checked', form):
        fields[name] = "y"
    return {k: v.replace("&#34;", '"').replace("&amp;", "&") for k, v in fields.items()}


def test_an_admin_builds_the_urgent_rule_sees_its_yaml_dry_runs_and_saves_it(web, google, team):
    with web.app_context():
        db = get_session()
        for n, subject in enumerate(["Срочно нужен счёт", "urgent: site down", "A question"]):
            tickets.open_ticket(db, team["mailbox"], subject=subject, customer=None, gmail_thread_id=f"b{n}",
                                created_at=datetime.now(UTC))  # fmt: skip
        db.commit()
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    url = f"/settings/rules/builder?mailbox={team['mailbox']}"
    page = client.get(url + "&rule=new").get_data(as_text=True)
    token = csrf_token(client, url + "&rule=new")

    def post(fields, **extra):
        return client.post(url, data={**fields, "csrf_token": token, "rule": "new", **extra})

    fields = _fields(page) | {"name": "Urgent words"}
    fields = _fields(post(fields, edit="add-leaf:c").get_data(as_text=True))
    fields = _fields(post(fields, edit="add-leaf:c").get_data(as_text=True))
    fields = _fields(post(fields, edit="toggle:c").get_data(as_text=True))
    fields |= {"c.0.value": "срочно", "c.1.value": "urgent", "a.0.kind": "set_priority"}
    fields = _fields(post(fields, edit="refresh").get_data(as_text=True))  # the value input follows the kind
    fields |= {"a.0.value": "urgent"}
    fields = _fields(post(fields, edit="add-action").get_data(as_text=True))
    fields |= {"a.1.kind": "add_tag", "a.1.value": "urgent"}
    shown = post(fields, edit="refresh").get_data(as_text=True)
    with web.app_context():
        before = get_session().scalar(select(func.count()).select_from(Event))
    tried = post(fields, do="dry-run").get_data(as_text=True)
    with web.app_context():
        after = get_session().scalar(select(func.count()).select_from(Event))
    saved = post(fields, do="save")

    yaml_text = re.search(r'<pre id="rule-yaml">(.*?)</pre>', shown, re.S)[1]
    assert "any:" in yaml_text and "value: срочно" in yaml_text and "set_priority: urgent" in yaml_text
    assert "2 matches on 3 tickets" in tried and before == after
    assert saved.status_code == 302
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        names = [rule.name for _row, rule in load_mailbox_rules(db, box.id)]
        assert names == ["Tag every ticket", "Urgent words"]


def test_a_stored_rule_opened_in_the_builder_and_saved_unchanged_stays_the_same(web, google, team):
    from server.services import rule_sets

    text = """rules:
  - name: Mixed
    trigger: customer_replied
    stop_processing: true
    conditions:
      all:
        - {field: hours_since_created, op: gt, value: 2.5}
        - not: {field: tags, op: in, value: [vip, 7]}
        - any:
            - {field: has_attachment, op: equals, value: true}
            - {field: body, op: is_empty}
    actions:
      - notify: {to: [admins, boss@example.com], template: Acknowledgement}
      - assign: least_open
"""
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        from server.services.defaults import install_defaults

        install_defaults(db, box)
        db.commit()
        rule_sets.save(db, box, rule_sets.parse(db, box, text))
        stored = [rule for _row, rule in load_mailbox_rules(db, box.id)]
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    url = f"/settings/rules/builder?mailbox={team['mailbox']}"
    page = client.get(url + "&rule=0").get_data(as_text=True)

    saved = client.post(url, data={**_fields(page), "csrf_token": csrf_token(client, url + "&rule=0"),
                                   "rule": "0", "do": "save"})  # fmt: skip

    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    with web.app_context():
        db = get_session()
        again = [rule for _row, rule in load_mailbox_rules(db, db.get(Mailbox, team["mailbox"]).id)]
        assert again == stored
        assert db.scalar(select(func.count()).select_from(Rule)) == 1


def test_the_builder_is_read_only_for_the_team_and_shows_problems_at_their_paths(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    url = f"/settings/rules/builder?mailbox={team['mailbox']}"
    page = client.get(url + "&rule=0").get_data(as_text=True)
    token = csrf_token(client, url + "&rule=0")

    refused = client.post(url, data={**_fields(page), "csrf_token": token, "rule": "0", "do": "save"})
    broken = client.post(url, data={**_fields(page), "c.kind": "leaf", "c.field": "subject", "c.op": "gt",
                                    "c.value_kind": "text", "c.value": "x", "csrf_token": token, "do": "dry-run"})  # fmt: skip

    assert "<fieldset disabled>" in page and 'id="builder-save"' not in page
    assert refused.status_code == 403
    assert broken.status_code == 400 and "rule.conditions.op" in broken.get_data(as_text=True)
