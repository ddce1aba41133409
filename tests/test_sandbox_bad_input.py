"""Bad input to the sandbox gets Gmail's error codes (400/404/413), never a 500 or a hang."""

from __future__ import annotations

import base64

import pytest
from helpers import MAILBOX, http, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

API = f"gmail/v1/users/{MAILBOX}"


def _gmail_error(body: dict, code: int) -> None:
    error = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["errors"][0]["reason"] and error["errors"][0]["domain"] == "global"


def test_malformed_json_is_a_400(gmail):
    status, body, _ = http(
        "POST",
        f"{gmail.url}{API}/messages/send",
        raw=b'{"raw": "abc',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    _gmail_error(body, 400)


def test_invalid_base64_raw_is_a_400(gmail):
    status, body, _ = http("POST", f"{gmail.url}{API}/messages/send", {"raw": "!!!not base64***"})
    assert status == 400
    assert "Base64" in body["error"]["message"]


def test_send_without_raw_or_recipient_is_a_400(gmail):
    no_raw = http("POST", f"{gmail.url}{API}/messages/send", {"threadId": "abc"})
    no_recipient = http(
        "POST",
        f"{gmail.url}{API}/messages/send",
        {"raw": base64.urlsafe_b64encode(b"Subject: x\r\n\r\nhi").decode()},
    )
    assert no_raw[0] == 400 and no_recipient[0] == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "messages/0123456789abcdef"),
        ("POST", "messages/0123456789abcdef/modify"),
        ("POST", "messages/0123456789abcdef/trash"),
        ("DELETE", "messages/0123456789abcdef"),
        ("GET", "messages/0123456789abcdef/attachments/ANGjdJxyz"),
        ("GET", "threads/0123456789abcdef"),
        ("GET", "labels/Label_99"),
    ],
)
def test_unknown_ids_are_404(gmail, method, path):
    status, body, _ = http(method, f"{gmail.url}{API}/{path}", {} if method == "POST" else None)
    assert status == 404
    _gmail_error(body, 404)


def test_unknown_attachment_of_a_known_message_is_a_400(gmail, deliver):
    message_id = deliver(make_email())["id"]
    status, body, _ = http("GET", f"{gmail.url}{API}/messages/{message_id}/attachments/bogus")
    assert status == 400


def test_a_30_mb_message_is_refused_with_413_everywhere(gmail):
    huge = make_email("huge", "x" * (30 * 1024 * 1024))
    delivered = http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/messages", raw=huge)
    as_json = http(
        "POST", f"{gmail.url}{API}/messages/send", raw=b'{"raw": "' + b"A" * (6 * 1024 * 1024) + b'"}'
    )
    too_big_upload = http(
        "POST",
        f"{gmail.url}upload/{API}/messages/send?uploadType=media",
        raw=b"x" * (36_700_161),
        headers={"Content-Type": "message/rfc822"},
    )
    beyond_anything = http(
        "POST", f"{gmail.url}sandbox/users/{MAILBOX}/messages", raw=b"x" * (41 * 1024 * 1024)
    )

    for status, body, _ in (delivered, as_json, too_big_upload, beyond_anything):
        assert status == 413
        _gmail_error(body, 413)
    assert http("GET", f"{gmail.url}{API}/profile")[1]["messagesTotal"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "maxResults=abc",
        "maxResults=0",
        "maxResults=-5",
        "pageToken=%%%",
        "pageToken=OTk5OTk5",
        "q=after:2020/13/45",
    ],
)
def test_bad_list_parameters_are_400(gmail, deliver, query):
    deliver(make_email())
    status, body, _ = http("GET", f"{gmail.url}{API}/messages?{query}")
    assert status == 400
    _gmail_error(body, 400)


@pytest.mark.parametrize("query", ["", "startHistoryId=abc", "startHistoryId=10000&historyTypes=bogus"])
def test_bad_history_parameters_are_400(gmail, query):
    status, body, _ = http("GET", f"{gmail.url}{API}/history?{query}")
    assert status == 400


def test_an_invalid_user_id_is_a_400_and_me_without_mailboxes_too(gmail):
    assert http("GET", f"{gmail.url}gmail/v1/users/not-an-address/profile")[0] == 400
    assert http("GET", f"{gmail.url}gmail/v1/users/me/profile")[0] == 400


def test_unknown_route_and_wrong_method_answer_json(gmail):
    missing = http("GET", f"{gmail.url}gmail/v1/users/{MAILBOX}/nothing-here")
    wrong_method = http("PUT", f"{gmail.url}{API}/profile")
    assert missing[0] == 404 and missing[1]["error"]["code"] == 404
    assert wrong_method[0] == 405 and wrong_method[1]["error"]["code"] == 405


def test_bad_batches(gmail, deliver):
    message_id = deliver(make_email())["id"]
    not_multipart = http(
        "POST", f"{gmail.url}batch/gmail/v1", raw=b"hello", headers={"Content-Type": "text/plain"}
    )
    garbage_part = (
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <x+1>\r\n\r\nthis is not http\r\n"
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <x+2>\r\n\r\n"
        b"GET /gmail/v1/users/"
        + MAILBOX.encode()
        + b"/messages/"
        + message_id.encode()
        + b"?format=minimal HTTP/1.1\r\n\r\n"
        b"--b--\r\n"
    )
    mixed = http(
        "POST",
        f"{gmail.url}batch/gmail/v1",
        raw=garbage_part,
        headers={"Content-Type": "multipart/mixed; boundary=b"},
    )
    too_many = b"".join(
        b"--b\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/profile HTTP/1.1\r\n\r\n"
        for _ in range(101)
    )
    over_limit = http(
        "POST",
        f"{gmail.url}batch/gmail/v1",
        raw=too_many + b"--b--\r\n",
        headers={"Content-Type": "multipart/mixed; boundary=b"},
    )

    assert not_multipart[0] == 400 and over_limit[0] == 400
    assert mixed[0] == 200
    text = mixed[1].decode()
    assert "HTTP/1.1 400" in text and "HTTP/1.1 200" in text and message_id in text
    assert "<response-x+1>" in text and "<response-x+2>" in text


def test_empty_and_non_message_deliveries(gmail):
    assert http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/messages", raw=b"   ")[0] == 400
    assert (
        http("POST", f"{gmail.url}sandbox/users/not-an-address/messages", raw=b"Subject: x\r\n\r\n")[0] == 400
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=3000))
def test_any_bytes_delivered_can_be_read_back_in_every_format(gmail, raw):
    status, delivered, _ = http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/messages", raw=raw)
    if not raw.strip():
        assert status == 400
        return
    assert status == 200, delivered
    for fmt in ("full", "metadata", "minimal", "raw"):
        status, body, _ = http("GET", f"{gmail.url}{API}/messages/{delivered['id']}?format={fmt}")
        assert status == 200, body
    status, thread, _ = http("GET", f"{gmail.url}{API}/threads/{delivered['threadId']}")
    assert status == 200 and delivered["id"] in [m["id"] for m in thread["messages"]]


MIME_PIECES = st.sampled_from(
    [
        b'Content-Type: multipart/mixed; boundary="zz"\r\n',
        b"Content-Type: multipart/alternative; boundary=\r\n",
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Disposition: attachment; filename*=utf-8''%D0%BF%D1%80\r\n",
        b"Subject: =?utf-8?B?0J/RgNC40LLQtdGC?= =?koi8-r?Q?=F0=D2?=\r\n",
        b'From: "Broken <quote@example.org>\r\n',
        b"Message-ID: <<<>>>\r\n",
        b"References: <a@b> <c@d\r\n",
        b"\r\n",
        b"--zz\r\n",
        b"--zz--\r\n",
        b"=?=?=?\r\n",
        b"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\r\n",
        b"\xff\xfe\x00\x01\r\n",
        b"SGVsbG8gd29ybGQ=\r\n",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(MIME_PIECES, min_size=1, max_size=25))
def test_mangled_mime_never_breaks_the_sandbox(gmail, pieces):
    raw = b"From: a@example.org\r\nTo: support@example.com\r\n" + b"".join(pieces)
    status, delivered, _ = http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/messages", raw=raw)
    assert status == 200
    status, message, _ = http("GET", f"{gmail.url}{API}/messages/{delivered['id']}")
    assert status == 200 and message["payload"]["mimeType"]
    for part in message["payload"].get("parts", []):
        if "attachmentId" in part["body"]:
            url = f"{gmail.url}{API}/messages/{delivered['id']}/attachments/{part['body']['attachmentId']}"
            assert http("GET", url)[0] == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=80))
def test_any_search_query_gets_an_answer_not_a_crash(gmail, deliver, query):
    from urllib.parse import quote

    if not http("GET", f"{gmail.url}{API}/profile")[1]["messagesTotal"]:
        deliver(make_email())
    status, body, _ = http("GET", f"{gmail.url}{API}/messages?q={quote(query)}")
    assert status in (200, 400), body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3),
        max_leaves=8,
    )
)
def test_any_json_body_to_modify_and_labels_gets_a_gmail_answer(gmail, deliver, body):
    if not http("GET", f"{gmail.url}{API}/profile")[1]["messagesTotal"]:
        deliver(make_email())
    message_id = http("GET", f"{gmail.url}{API}/messages")[1]["messages"][0]["id"]
    for url in (f"{API}/messages/{message_id}/modify", f"{API}/labels", "sandbox/faults", "sandbox/quota"):
        status, answer, _ = http("POST", f"{gmail.url}{url}", body)
        assert status in (200, 400, 409), (url, answer)
    http("DELETE", f"{gmail.url}sandbox/faults")
    http("POST", f"{gmail.url}sandbox/quota", {"enforce": False})


def _start_upload(gmail, **headers: str) -> str:
    status, _, answer = http(
        "POST",
        f"{gmail.url}upload/{API}/messages/send?uploadType=resumable",
        {},
        headers={"X-Upload-Content-Type": "message/rfc822", **headers},
    )
    assert status == 200
    return answer["Location"]


def _put(url: str, data: bytes, content_range: str | None):
    return http("PUT", url, raw=data, headers={"Content-Range": content_range} if content_range else {})


def test_a_resumable_upload_follows_googles_protocol_step_by_step(gmail):
    raw = make_email("Resumed", "x" * 1000, sender=MAILBOX, to="bob@example.org")
    total, half = len(raw), len(raw) // 2
    url = _start_upload(gmail, **{"X-Upload-Content-Length": str(total)})

    nothing_yet = _put(url, b"", f"bytes */{total}")
    first = _put(url, raw[:half], f"bytes 0-{half - 1}/{total}")
    query = _put(url, b"", f"bytes */{total}")
    gap = _put(url, raw[half + 10 :], f"bytes {half + 10}-{total - 1}/{total}")  # skips ten bytes
    done = _put(url, raw[half:], f"bytes {half}-{total - 1}/{total}")
    after = _put(url, b"", f"bytes */{total}")

    assert nothing_yet[0] == 308 and "Range" not in nothing_yet[2]
    assert first[0] == query[0] == gap[0] == 308
    assert first[2]["Range"] == query[2]["Range"] == gap[2]["Range"] == f"bytes=0-{half - 1}"
    assert done[0] == after[0] == 200 and done[1] == after[1]  # a lost answer is asked for again
    assert gmail.sandbox.user(MAILBOX).messages[done[1]["id"]].raw == raw
    assert http("GET", f"{gmail.url}sandbox/quota")[1]["calls_by_method"] == {"messages.send": 1}


@pytest.mark.parametrize(
    ("content_range", "data", "status"),
    [
        ("bytes 0-9/5", b"x" * 10, 400),  # ends beyond its total
        ("bytes 0-3/10", b"x" * 10, 400),  # does not match the bytes sent
        ("bytes=0-9/10", b"x" * 10, 400),  # not the syntax
        ("bytes 0-9/99999999999", b"x" * 10, 413),
        ("bytes 0-9/10", b"x" * 10, 400),  # differs from X-Upload-Content-Length
    ],
)
def test_a_bad_content_range_is_a_400_or_413_and_the_session_survives(gmail, content_range, data, status):
    raw = make_email("Ok", sender=MAILBOX, to="bob@example.org")
    url = _start_upload(gmail, **{"X-Upload-Content-Length": str(len(raw))})

    refused = _put(url, data, content_range)
    finished = _put(url, raw, None)

    _gmail_error(refused[1], status)
    assert finished[0] == 200 and finished[1]["labelIds"] == ["SENT"]


def test_an_unknown_or_foreign_upload_session_is_a_404(gmail):
    url = _start_upload(gmail)
    foreign = url.replace(f"users/{MAILBOX}", "users/bob@example.org")

    unknown = _put(url.replace("upload_id=", "upload_id=nope"), b"x", None)
    other = _put(foreign, b"x", None)
    too_big = http(
        "POST",
        f"{gmail.url}upload/{API}/messages/send?uploadType=resumable",
        {},
        headers={"X-Upload-Content-Length": str(40 * 1024 * 1024)},
    )

    assert unknown[0] == other[0] == 404
    assert too_big[0] == 413


def test_a_refused_message_can_be_sent_again_on_its_session(gmail):
    url = _start_upload(gmail)
    no_recipient = b"Subject: nobody\r\n\r\nhi\r\n"

    refused = _put(url, no_recipient, None)
    again = _put(url, no_recipient, None)
    query = _put(url, b"", f"bytes */{len(no_recipient)}")

    assert refused[0] == again[0] == 400 and "Recipient" in again[1]["error"]["message"]
    assert query[0] == 308 and "Range" not in query[2]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content_range=st.text(max_size=40), data=st.binary(max_size=64))
def test_any_content_range_answers_without_a_server_error(gmail, content_range, data):
    url = _start_upload(gmail)
    header = content_range.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "")

    status, _, _ = _put(url, data, header or None)

    assert status in (200, 308, 400, 413)
