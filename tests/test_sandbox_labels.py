"""The sandbox's labels as Gmail documents them, through the real client: nested names, the colour
palette, rename and delete, threads.modify, messages.batchModify (at most 1,000 ids, 50 units) and the
labelAdded / labelRemoved history records they leave, archive included (INBOX removed)."""

from __future__ import annotations

import pytest
from helpers import make_email

from server.gmail.errors import GmailApiError

GREEN = {"textColor": "#ffffff", "backgroundColor": "#16a766"}


def _history(client, since: int) -> list[dict]:
    return client.history(since).get("history", [])


def test_nested_labels_with_colours_can_be_renamed_and_deleted(gmail_client, deliver):
    client = gmail_client()
    deliver(make_email("Printer", "Broken"))
    message_id = client.list_messages()["messages"][0]["id"]

    root = client.create_label("Postdesk")
    solved = client.create_label("Postdesk/Solved", GREEN)
    assert solved["name"] == "Postdesk/Solved" and solved["color"] == GREEN and root["id"] != solved["id"]
    with pytest.raises(GmailApiError) as duplicate:
        client.create_label("postdesk/solved")  # case folded
    with pytest.raises(GmailApiError) as off_palette:
        client.create_label("Postdesk/Odd", {"textColor": "#123456", "backgroundColor": "#16a766"})
    with pytest.raises(GmailApiError) as empty_part:
        client.create_label("Postdesk//Mine")
    assert (duplicate.value.status, off_palette.value.status, empty_part.value.status) == (409, 400, 400)

    client.modify(message_id, add=[solved["id"]])
    renamed = client.patch_label(solved["id"], {"name": "Postdesk/Решено"})
    assert renamed["name"] == "Postdesk/Решено" and renamed["color"] == GREEN  # a patch keeps the rest
    with pytest.raises(GmailApiError) as system:
        client.patch_label("INBOX", {"name": "Box"})
    assert system.value.status == 400

    client.call("labels.delete", client.users.labels().delete(userId="me", id=solved["id"]))
    assert solved["id"] not in client.get_message(message_id, "minimal")["labelIds"]
    assert solved["id"] not in {label["id"] for label in client.labels()}


def test_threads_modify_changes_every_message_of_the_thread_with_history(gmail_client, deliver):
    client = gmail_client()
    first = deliver(make_email("Invoice", "Copy please", message_id="<a@x>"))
    deliver(make_email("Re: Invoice", "Still waiting", message_id="<b@x>", in_reply_to="<a@x>"))
    label = client.create_label("Postdesk/Open")
    since = int(client.profile()["historyId"])
    units = client.meter.units_total

    thread = client.modify_thread(first["threadId"], add=[label["id"]], remove=["INBOX"])  # archive too

    assert client.meter.units_total - units == 10
    assert len(thread["messages"]) == 2
    assert all(label["id"] in m["labelIds"] and "INBOX" not in m["labelIds"] for m in thread["messages"])
    records = _history(client, since)
    added = [r for r in records if "labelsAdded" in r]
    removed = [r for r in records if "labelsRemoved" in r]
    assert len(added) == len(removed) == 2
    assert added[0]["labelsAdded"][0]["labelIds"] == [label["id"]]
    assert removed[0]["labelsRemoved"][0]["labelIds"] == ["INBOX"]
    with pytest.raises(GmailApiError) as unknown:
        client.modify_thread("ffffffffffff", add=[label["id"]])
    assert unknown.value.status == 404


def test_batch_modify_takes_up_to_a_thousand_ids_for_fifty_units(gmail_client, deliver):
    client = gmail_client()
    ids = [deliver(make_email(f"Ticket {n}", "Hi", message_id=f"<m{n}@x>"))["id"] for n in range(5)]
    label = client.create_label("Postdesk/Urgent")
    units = client.meter.units_total

    client.batch_modify(ids, add=[label["id"]])

    assert client.meter.units_total - units == 50
    assert all(label["id"] in client.get_message(i, "minimal")["labelIds"] for i in ids)
    with pytest.raises(GmailApiError) as too_many:
        client.batch_modify([ids[0]] * 1001, add=[label["id"]])
    with pytest.raises(GmailApiError) as bad_label:
        client.batch_modify(ids, add=["Label_999"])
    assert too_many.value.status == bad_label.value.status == 400
