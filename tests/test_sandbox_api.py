"""The Gmail sandbox against Gmail's documented behaviour, driven by the real google-api-python-client."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from helpers import MAILBOX, http, make_email


def control(gmail: Any, method: str, path: str, body: Any = None) -> Any:
    status, content, _ = http(method, f"{gmail.url}{path}", body)
    assert status < 300, content
    return content


@pytest.fixture
def users(gmail_client: Any) -> Any:
    return gmail_client().service.users()


def test_a_delivered_message_is_listed_and_read_back_in_every_format(deliver, users):
    raw = make_email("Printer on fire", "It is really on fire.", message_id="<fire@example.org>")
    delivered = deliver(raw)

    listed = users.messages().list(userId=MAILBOX).execute()
    full = users.messages().get(userId=MAILBOX, id=delivered["id"]).execute()
    minimal = users.messages().get(userId=MAILBOX, id=delivered["id"], format="minimal").execute()
    metadata = (
        users.messages()
        .get(userId=MAILBOX, id=delivered["id"], format="metadata", metadataHeaders=["Subject", "message-id"])
        .execute()
    )
    raw_format = users.messages().get(userId="me", id=delivered["id"], format="raw").execute()

    assert listed == {
        "resultSizeEstimate": 1,
        "messages": [{"id": delivered["id"], "threadId": delivered["threadId"]}],
    }
    assert full["labelIds"] == ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]
    assert full["snippet"] == "It is really on fire."
    assert full["internalDate"].isdigit() and full["historyId"] == delivered["historyId"]
    body = base64.urlsafe_b64decode(full["payload"]["body"]["data"])
    assert body.strip() == b"It is really on fire."
    assert "payload" not in minimal and minimal["sizeEstimate"] == len(raw)
    assert [h["name"] for h in metadata["payload"]["headers"]] == ["Subject", "Message-ID"]
    assert base64.urlsafe_b64decode(raw_format["raw"]) == raw


def test_nested_multipart_parts_and_attachments_match_gmail_shapes(deliver, users):
    raw = (
        b"From: bob@example.org\r\nTo: support@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b'--outer\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Привет".encode("koi8-r")
        + b"\r\n--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p>\r\n--inner--\r\n"
        b'--outer\r\nContent-Type: application/pdf; name="r.pdf"\r\nContent-Disposition: attachment; filename="r.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"%PDF-1.4 data")
        + b"\r\n--outer--\r\n"
    )
    message_id = deliver(raw)["id"]

    payload = users.messages().get(userId=MAILBOX, id=message_id).execute()["payload"]
    attachment = payload["parts"][1]
    fetched = (
        users.messages()
        .attachments()
        .get(userId=MAILBOX, messageId=message_id, id=attachment["body"]["attachmentId"])
        .execute()
    )

    assert payload["mimeType"] == "multipart/mixed" and payload["body"] == {"size": 0}
    assert [p["partId"] for p in payload["parts"][0]["parts"]] == ["0.0", "0.1"]
    plain = payload["parts"][0]["parts"][0]
    # Bodies keep their own charset, as Gmail's do: the client decodes.
    assert base64.urlsafe_b64decode(plain["body"]["data"]).decode("koi8-r") == "Привет"
    assert attachment["filename"] == "r.pdf" and "data" not in attachment["body"]
    assert base64.urlsafe_b64decode(fetched["data"]) == b"%PDF-1.4 data"
    assert fetched["size"] == len(b"%PDF-1.4 data")


def test_messages_list_pages_through_everything_newest_first(deliver, users):
    ids = [deliver(make_email(f"n{i}"))["id"] for i in range(7)]

    seen, token, pages = [], None, 0
    while True:
        page = users.messages().list(userId=MAILBOX, maxResults=3, pageToken=token).execute()
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break

    assert pages == 3
    assert seen == list(reversed(ids))


def test_history_lists_changes_in_order_after_the_start_id(deliver, users):
    start = users.getProfile(userId=MAILBOX).execute()["historyId"]
    first = deliver(make_email("one"))
    second = deliver(make_email("two"))
    users.messages().modify(userId=MAILBOX, id=first["id"], body={"removeLabelIds": ["UNREAD"]}).execute()

    history = users.history().list(userId=MAILBOX, startHistoryId=start).execute()
    added_only = (
        users.history().list(userId=MAILBOX, startHistoryId=start, historyTypes=["messageAdded"]).execute()
    )

    ids = [int(record["id"]) for record in history["history"]]
    assert ids == sorted(ids) and all(i > int(start) for i in ids)
    assert [r["messagesAdded"][0]["message"]["id"] for r in history["history"][:2]] == [
        first["id"],
        second["id"],
    ]
    assert history["history"][2]["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert history["historyId"] == str(ids[-1])
    assert len(added_only["history"]) == 2


def test_history_pages_and_labelid_filter(deliver, users):
    start = users.getProfile(userId=MAILBOX).execute()["historyId"]
    for i in range(5):
        deliver(make_email(f"m{i}"))
    deliver(make_email("from us", sender=MAILBOX, to="alice@example.org"))

    first = users.history().list(userId=MAILBOX, startHistoryId=start, maxResults=4).execute()
    rest = (
        users.history().list(userId=MAILBOX, startHistoryId=start, pageToken=first["nextPageToken"]).execute()
    )
    sent = users.history().list(userId=MAILBOX, startHistoryId=start, labelId="SENT").execute()

    assert len(first["history"]) == 4 and len(rest["history"]) == 2 and "nextPageToken" not in rest
    assert len(sent["history"]) == 1


def test_expired_history_answers_404_and_the_profile_gives_a_fresh_start(deliver, users, gmail):
    old = users.getProfile(userId=MAILBOX).execute()["historyId"]
    deliver(make_email("before expiry"))
    control(gmail, "POST", f"sandbox/users/{MAILBOX}/expire-history")

    with pytest.raises(HttpError) as caught:
        users.history().list(userId=MAILBOX, startHistoryId=old).execute()
    fresh = users.getProfile(userId=MAILBOX).execute()["historyId"]
    after = users.history().list(userId=MAILBOX, startHistoryId=fresh).execute()

    assert caught.value.resp.status == 404
    assert json.loads(caught.value.content)["error"]["errors"][0]["reason"] == "notFound"
    assert "history" not in after and after["historyId"] == fresh


def test_a_reply_joins_its_thread_only_when_references_and_subject_match(deliver, users):
    original = deliver(make_email("Broken login", message_id="<orig@example.org>"))
    reply = deliver(make_email("RE: Broken login", in_reply_to="<orig@example.org>"))
    other_subject = deliver(make_email("Something else", in_reply_to="<orig@example.org>"))
    same_subject_no_refs = deliver(make_email("Broken login"))

    thread = users.threads().get(userId=MAILBOX, id=original["threadId"]).execute()

    assert reply["threadId"] == original["threadId"]
    assert other_subject["threadId"] != original["threadId"]
    assert same_subject_no_refs["threadId"] != original["threadId"]
    assert [m["id"] for m in thread["messages"]] == [original["id"], reply["id"]]


def test_send_with_thread_id_threads_a_proper_reply_and_not_a_stranger(deliver, users):
    original = deliver(make_email("Refund", message_id="<refund@example.org>"))
    reply_raw = make_email(
        "Re: Refund", "Done.", sender=MAILBOX, to="alice@example.org", in_reply_to="<refund@example.org>"
    )
    stray_raw = make_email("Unrelated", "Hi", sender=MAILBOX, to="alice@example.org")

    sent = (
        users.messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(reply_raw).decode(), "threadId": original["threadId"]},
        )
        .execute()
    )
    stray = (
        users.messages()
        .send(
            userId="me",
            body={"raw": base64.urlsafe_b64encode(stray_raw).decode(), "threadId": original["threadId"]},
        )
        .execute()
    )

    assert sent["threadId"] == original["threadId"] and sent["labelIds"] == ["SENT"]
    assert stray["threadId"] == stray["id"] != original["threadId"]
    history = users.history().list(userId=MAILBOX, startHistoryId=original["historyId"]).execute()["history"]
    assert [r["messages"][0]["threadId"] for r in history] == [original["threadId"], stray["id"]]


def test_send_through_the_upload_endpoint_media_and_multipart(users, gmail):
    # The client library keeps https:// when it rewrites upload URLs for a custom endpoint, so the
    # /upload path is driven over plain HTTP here, with the bodies the library would send.
    raw = make_email("Uploaded", "Big one", sender=MAILBOX, to="bob@example.org")
    media = urllib.request.Request(
        f"{gmail.url}upload/gmail/v1/users/{MAILBOX}/messages/send?uploadType=media",
        data=raw,
        headers={"Content-Type": "message/rfc822"},
    )
    related = (
        b"--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n"
        b"--xyz\r\nContent-Type: message/rfc822\r\n\r\n" + raw + b"\r\n--xyz--\r\n"
    )
    multipart = urllib.request.Request(
        f"{gmail.url}upload/gmail/v1/users/{MAILBOX}/messages/send?uploadType=multipart",
        data=related,
        headers={"Content-Type": 'multipart/related; boundary="xyz"'},
    )

    sent = [
        http("POST", r.full_url, raw=r.data, headers=dict(r.header_items()))[1] for r in (media, multipart)
    ]
    stored = [users.messages().get(userId=MAILBOX, id=s["id"], format="raw").execute() for s in sent]

    assert all(base64.urlsafe_b64decode(s["raw"]).rstrip().endswith(b"Big one") for s in stored)
    assert all(s["labelIds"] == ["SENT"] for s in sent)


def test_rfc822msgid_search_finds_exactly_one_message(deliver, users):
    deliver(make_email("a", message_id="<needle-1@example.org>"))
    wanted = deliver(make_email("b", message_id="<needle-2@example.org>"))

    bare = users.messages().list(userId=MAILBOX, q="rfc822msgid:needle-2@example.org").execute()
    bracketed = users.messages().list(userId=MAILBOX, q="rfc822msgid:<needle-2@example.org>").execute()
    nothing = users.messages().list(userId=MAILBOX, q="rfc822msgid:absent@example.org").execute()

    assert [m["id"] for m in bare["messages"]] == [wanted["id"]]
    assert bracketed["messages"] == bare["messages"]
    assert nothing == {"resultSizeEstimate": 0}


def test_after_in_and_label_queries(deliver, users):
    now = int(time.time())
    deliver(make_email("fresh"))
    label = users.labels().create(userId=MAILBOX, body={"name": "Needs Review"}).execute()
    second = deliver(make_email("labelled"))
    users.messages().modify(userId=MAILBOX, id=second["id"], body={"addLabelIds": [label["id"]]}).execute()

    after_past = users.messages().list(userId=MAILBOX, q=f"after:{now - 3600}").execute()
    after_future = users.messages().list(userId=MAILBOX, q=f"after:{now + 3600}").execute()
    in_inbox = users.messages().list(userId=MAILBOX, q="in:inbox").execute()
    by_label = users.messages().list(userId=MAILBOX, q="label:needs-review").execute()
    by_date = users.messages().list(userId=MAILBOX, q="after:2001/01/01 -subject:fresh").execute()

    assert after_past["resultSizeEstimate"] == 2 and after_future == {"resultSizeEstimate": 0}
    assert in_inbox["resultSizeEstimate"] == 2
    assert [m["id"] for m in by_label["messages"]] == [second["id"]]
    assert [m["id"] for m in by_date["messages"]] == [second["id"]]


def test_labels_list_create_and_duplicate(users):
    created = users.labels().create(userId=MAILBOX, body={"name": "Postdesk/Open"}).execute()
    labels = users.labels().list(userId=MAILBOX).execute()["labels"]

    with pytest.raises(HttpError) as duplicate:
        users.labels().create(userId=MAILBOX, body={"name": "postdesk/open"}).execute()

    assert created["id"].startswith("Label_") and created["type"] == "user"
    assert {"INBOX", "SENT", "TRASH", created["id"]} <= {label["id"] for label in labels}
    assert duplicate.value.resp.status == 409


def test_trash_and_delete_show_up_in_history(deliver, users):
    start = users.getProfile(userId=MAILBOX).execute()["historyId"]
    trashed = deliver(make_email("trash me"))
    deleted = deliver(make_email("delete me"))

    users.messages().trash(userId=MAILBOX, id=trashed["id"]).execute()
    users.messages().delete(userId=MAILBOX, id=deleted["id"]).execute()
    history = users.history().list(userId=MAILBOX, startHistoryId=start).execute()["history"]
    listed = users.messages().list(userId=MAILBOX).execute()

    assert history[2]["labelsAdded"][0]["labelIds"] == ["TRASH"]
    assert history[3]["messagesDeleted"][0]["message"]["id"] == deleted["id"]
    assert listed == {"resultSizeEstimate": 0}  # trash is hidden unless asked for
    assert users.messages().list(userId=MAILBOX, includeSpamTrash=True).execute()["resultSizeEstimate"] == 1


def test_watch_and_stop(users):
    watch = users.watch(userId=MAILBOX, body={"topicName": "projects/p/topics/gmail"}).execute()
    stopped = users.stop(userId=MAILBOX).execute()

    assert int(watch["expiration"]) > time.time() * 1000 and watch["historyId"].isdigit()
    assert stopped in ("", None, {})


def test_batch_with_mixed_successes_and_errors(deliver, users, gmail):
    ids = [deliver(make_email(f"b{i}"))["id"] for i in range(3)]
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, error: HttpError | None) -> None:
        results[request_id] = error.resp.status if error else response["id"]

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{gmail.url}batch/gmail/v1")
    for message_id in ids + ["ffffffffffffffff"]:
        batch.add(
            users.messages().get(userId=MAILBOX, id=message_id, format="minimal"), request_id=message_id
        )
    bad_label = users.messages().modify(userId=MAILBOX, id=ids[0], body={"addLabelIds": ["NO_SUCH_LABEL"]})
    batch.add(bad_label, request_id="bad-label")
    batch.execute()

    assert results == {
        ids[0]: ids[0],
        ids[1]: ids[1],
        ids[2]: ids[2],
        "ffffffffffffffff": 404,
        "bad-label": 400,
    }


def test_faults_fail_the_named_methods_with_retry_after(deliver, users, gmail):
    deliver(make_email("x"))
    control(
        gmail,
        "POST",
        "sandbox/faults",
        {"status": 429, "rate": 1.0, "methods": ["messages.list"], "retry_after": 7},
    )

    with pytest.raises(HttpError) as caught:
        users.messages().list(userId=MAILBOX).execute()
    profile = users.getProfile(userId=MAILBOX).execute()  # another method is not affected
    control(gmail, "DELETE", "sandbox/faults")
    listed = users.messages().list(userId=MAILBOX).execute()

    assert caught.value.resp.status == 429 and caught.value.resp["retry-after"] == "7"
    assert json.loads(caught.value.content)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert profile["emailAddress"] == MAILBOX
    assert listed["resultSizeEstimate"] == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_faults_hit_about_the_asked_rate(users, gmail, status):
    control(gmail, "POST", "sandbox/faults", {"status": status, "rate": 0.5})
    failures = 0
    for _ in range(200):
        try:
            users.getProfile(userId=MAILBOX).execute()
        except HttpError as error:
            assert error.resp.status == status
            failures += 1
    assert 60 <= failures <= 140


def test_quota_is_metered_with_gmails_unit_prices(deliver, users, gmail):
    message_id = deliver(make_email("q"))["id"]
    control(gmail, "DELETE", "sandbox/quota")

    start = users.getProfile(userId=MAILBOX).execute()["historyId"]
    users.messages().list(userId=MAILBOX).execute()
    users.messages().get(userId=MAILBOX, id=message_id).execute()
    users.history().list(userId=MAILBOX, startHistoryId=start).execute()
    users.messages().send(
        userId=MAILBOX, body={"raw": base64.urlsafe_b64encode(make_email("s", to="x@y.org")).decode()}
    ).execute()
    quota = control(gmail, "GET", "sandbox/quota")

    assert quota["by_method"] == {
        "getProfile": 1, "messages.list": 5, "messages.get": 5, "history.list": 2, "messages.send": 100
    }  # fmt: skip
    assert quota["units_total"] == 113


def _statuses(calls: Any) -> list[int | str]:
    """200 for each call that passed, else the error's status and reason."""
    outcomes: list[int | str] = []
    for call in calls:
        try:
            call.execute()
            outcomes.append(200)
        except HttpError as error:
            reason = json.loads(error.content)["error"]["errors"][0]
            outcomes.append(f"{error.resp.status} {reason['reason']} {reason['domain']}")
    return outcomes


def test_a_burst_gmail_allows_in_a_minute_passes_and_the_next_unit_is_refused(users, gmail):
    # Failed before: a strict one-second window of 250 units refused the third send of a burst.
    import time_machine

    control(gmail, "POST", "sandbox/quota", {"enforce": True, "reset": True})
    raw = base64.urlsafe_b64encode(make_email("burst", sender=MAILBOX, to="x@example.org")).decode()
    with time_machine.travel(1_800_000_000, tick=False) as clock:  # every call in the same instant
        burst = _statuses(users.messages().send(userId=MAILBOX, body={"raw": raw}) for _ in range(150))
        over = _statuses([users.getProfile(userId=MAILBOX)])  # 150 x 100 = 15,000: not one unit more
        clock.shift(59.9)
        still_over = _statuses([users.getProfile(userId=MAILBOX)])
        clock.shift(0.2)  # the burst has left the last minute
        again = _statuses([users.getProfile(userId=MAILBOX)])
        other_user = _statuses([users.getProfile(userId="bob@example.org")])

    assert burst == [200] * 150
    assert over == still_over == ["403 userRateLimitExceeded usageLimits"]
    assert again == other_user == [200]
    assert control(gmail, "GET", "sandbox/quota")["units_total"] == 150 * 100 + 2


def test_the_project_limit_counts_every_user_together(users, gmail):
    import time_machine

    control(
        gmail,
        "POST",
        "sandbox/quota",
        {"enforce": True, "reset": True, "user_units_per_minute": 60, "project_units_per_minute": 100},
    )
    with time_machine.travel(1_800_000_000, tick=False):
        anna = _statuses(users.messages().list(userId="anna@example.org") for _ in range(13))
        bob = _statuses(users.messages().list(userId="bob@example.org") for _ in range(9))
    quota = control(gmail, "GET", "sandbox/quota")

    user_limit, project_limit = "403 userRateLimitExceeded usageLimits", "403 rateLimitExceeded usageLimits"
    assert anna == [200] * 12 + [user_limit]  # 12 x 5 = 60 units: the user's minute is full
    assert bob == [200] * 8 + [project_limit]  # 60 + 40 = 100 units: the project's minute is full
    assert quota["user_units_per_minute"] == 60 and quota["project_units_per_minute"] == 100


@pytest.mark.parametrize(
    "body",
    [{"user_units_per_minute": 0}, {"project_units_per_minute": "many"}, {"user_units_per_minute": True}],
)
def test_quota_limits_must_be_positive_integers(gmail, body):
    status, content, _ = http("POST", f"{gmail.url}sandbox/quota", body)

    assert status == 400 and "positive integer" in content["error"]["message"]
    assert control(gmail, "GET", "sandbox/quota")["user_units_per_minute"] == 15_000


def test_bcc_stays_in_the_senders_copy_and_leaves_every_delivered_copy(users, gmail):
    raw = (
        f"From: {MAILBOX}\r\nTo: anna@example.org\r\nCc: carl@example.org\r\n"
        "Bcc: boss@example.org,\r\n anna@example.org\r\nSubject: Hush\r\n\r\nSecret list.\r\n"
    ).encode()
    for address in ("anna@example.org", "carl@example.org", "boss@example.org"):
        users.getProfile(userId=address).execute()  # the recipients exist in the sandbox

    sent = (
        users.messages().send(userId=MAILBOX, body={"raw": base64.urlsafe_b64encode(raw).decode()}).execute()
    )
    copies = {}
    for address in ("anna@example.org", "carl@example.org", "boss@example.org"):
        listed = users.messages().list(userId=address).execute()["messages"]
        copies[address] = [
            base64.urlsafe_b64decode(
                users.messages().get(userId=address, id=m["id"], format="raw").execute()["raw"]
            )
            for m in listed
        ]
    own = users.messages().get(userId=MAILBOX, id=sent["id"], format="metadata").execute()

    assert {h["name"]: h["value"] for h in own["payload"]["headers"]}["Bcc"] == (
        "boss@example.org, anna@example.org"
    )
    assert all(len(found) == 1 for found in copies.values())  # anna is in To and Bcc: one copy
    for (message,) in copies.values():
        assert b"bcc" not in message.lower() and b"boss@" not in message
        assert message.endswith(b"Subject: Hush\r\n\r\nSecret list.\r\n")


def test_latency_is_injected(users, gmail):
    control(gmail, "POST", "sandbox/faults", {"latency_ms": 150})
    started = time.monotonic()
    users.getProfile(userId=MAILBOX).execute()
    assert time.monotonic() - started >= 0.15


def test_control_api_rejects_a_bad_fault_plan(gmail):
    for plan in (
        {"status": 418},
        {"status": 500, "rate": 2},
        {"methods": "messages.get"},
        ["not", "an", "object"],
    ):
        status, body, _ = http("POST", f"{gmail.url}sandbox/faults", plan)
        assert status == 400
        assert body["error"]["code"] == 400 and body["error"]["message"]


def test_fault_methods_may_use_the_discovery_names(users, gmail):
    control(gmail, "POST", "sandbox/faults", {"status": 500, "rate": 1.0, "methods": ["users.getProfile"]})
    with pytest.raises(HttpError) as caught:
        users.getProfile(userId=MAILBOX).execute()
    assert caught.value.resp.status == 500
    assert control(gmail, "GET", "sandbox/faults")["methods"] == ["getProfile"]
