"""Postdesk's Gmail client: retries with backoff and Retry-After, batching, quota metering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import MAILBOX, http, make_email

from server.gmail.client import RetryPolicy, parse_retry_after
from server.gmail.credentials import credentials_for
from server.gmail.errors import GmailApiError, GmailCredentialsError, GmailUnavailable, HistoryExpired


def faults(gmail, **plan):
    status, body, _ = http("POST", f"{gmail.url}sandbox/faults", plan)
    assert status == 200, body


def sandbox_quota(gmail):
    return http("GET", f"{gmail.url}sandbox/quota")[1]


def test_a_429_with_retry_after_is_waited_out_then_the_call_succeeds(gmail, gmail_client, deliver):
    deliver(make_email())
    waits: list[float] = []
    client = gmail_client(sleep=waits.append, retry=RetryPolicy(max_attempts=5, base=0.5, cap=4))
    faults(gmail, status=429, rate=1.0, methods=["messages.list"], retry_after=3, count=2)

    listed = client.list_messages()

    assert listed["resultSizeEstimate"] == 1
    assert len(waits) == 2 and all(w >= 3 for w in waits)
    assert client.meter.retries == 2


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    policy = RetryPolicy(max_attempts=10, base=0.5, cap=8)
    assert [policy.delay(n, None, lambda: 1.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert policy.delay(3, None, lambda: 0.25) == 0.5
    assert policy.delay(1, 12.0, lambda: 1.0) == 12.0
    assert policy.delay(1, 10_000.0, lambda: 1.0) == 300.0  # a silly Retry-After is capped


def test_retry_after_parses_seconds_and_http_dates():
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now) == 0.0
    assert (
        parse_retry_after("soon") is None
        and parse_retry_after(None) is None
        and parse_retry_after("nan") is None
    )


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_until_they_pass(gmail, gmail_client, status):
    client = gmail_client()
    faults(gmail, status=status, rate=1.0, count=3)
    assert client.profile()["emailAddress"] == MAILBOX
    assert client.meter.retries == 3


def test_giving_up_after_the_last_attempt_is_a_clear_error(gmail, gmail_client):
    client = gmail_client(retry=RetryPolicy(max_attempts=3, base=0.0, cap=0.0))
    faults(gmail, status=503, rate=1.0)
    with pytest.raises(GmailUnavailable, match="getProfile: gave up after 3 attempts"):
        client.profile()


def test_a_timeout_is_retried_like_a_5xx(gmail, gmail_client):
    client = gmail_client(timeout=0.2, retry=RetryPolicy(max_attempts=2, base=0.0, cap=0.0))
    faults(gmail, latency_ms=600)
    with pytest.raises(GmailUnavailable, match="TimeoutError|timeout"):
        client.profile()
    assert client.meter.retries == 1


def test_client_errors_are_not_retried(gmail_client):
    client = gmail_client()
    with pytest.raises(GmailApiError) as caught:
        client.get_message("0123456789abcdef")
    assert caught.value.status == 404 and caught.value.reason == "notFound"
    assert client.meter.retries == 0


def test_an_expired_checkpoint_is_history_expired(gmail, gmail_client, deliver):
    client = gmail_client()
    deliver(make_email())
    old = int(client.profile()["historyId"]) - 1
    http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/expire-history")
    with pytest.raises(HistoryExpired):
        client.history(old)


def test_get_messages_batches_at_most_50_and_reports_missing_ids(gmail, gmail_client, deliver):
    ids = [deliver(make_email(f"m{i}"))["id"] for i in range(120)]
    client = gmail_client()

    result = client.get_messages(ids + ["0123456789abcdef"], fmt="minimal")

    assert set(result.messages) == set(ids)
    assert result.missing == ["0123456789abcdef"]
    assert sandbox_quota(gmail)["batch_sizes"] == [50, 50, 21]


def test_get_messages_survives_20_percent_failures(gmail, gmail_client, deliver):
    ids = [deliver(make_email(f"m{i}"))["id"] for i in range(150)]
    client = gmail_client(retry=RetryPolicy(max_attempts=30, base=0.0, cap=0.0))
    faults(gmail, status=503, rate=0.2)

    result = client.get_messages(ids)

    assert sorted(result.messages) == sorted(ids)
    assert all(m["payload"]["mimeType"] == "text/plain" for m in result.messages.values())
    assert client.meter.retries >= 1


def test_the_client_meter_agrees_with_gmails_unit_prices(gmail, gmail_client, deliver):
    ids = [deliver(make_email(f"m{i}"))["id"] for i in range(10)]
    http("DELETE", f"{gmail.url}sandbox/quota")
    client = gmail_client()

    client.profile()
    list(client.iter_message_ids())
    client.get_messages(ids)
    client.send(make_email("out", sender=MAILBOX, to="bob@example.org"))

    assert client.meter.units_total == sandbox_quota(gmail)["units_total"] == 1 + 5 + 10 * 5 + 100


def test_the_per_user_rate_limit_is_respected_by_backing_off(gmail, gmail_client, deliver):
    import time_machine

    ids = [deliver(make_email(f"m{i}"))["id"] for i in range(120)]
    limits = {"enforce": True, "reset": True, "user_units_per_minute": 250}
    http("POST", f"{gmail.url}sandbox/quota", limits)
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # backing off lets the (frozen) clock move on
            waits.append(seconds)
            clock.shift(seconds)

        retry = RetryPolicy(max_attempts=10, base=1.0, cap=64.0)
        client = gmail_client(sleep=sleep, retry=retry, rng=lambda: 1.0)
        result = client.get_messages(ids, fmt="minimal")  # 600 units: more than two minutes' worth

    assert len(result.messages) == 120
    assert sum(waits) >= 120  # the 403 userRateLimitExceeded answers carry no Retry-After
    assert sandbox_quota(gmail)["by_method"]["messages.get"] == 600


def test_send_with_thread_and_find_by_rfc822_id(gmail_client, deliver):
    original = deliver(make_email("Question", message_id="<q1@example.org>"))
    client = gmail_client()
    reply = make_email(
        "Re: Question",
        "Answer",
        sender=MAILBOX,
        to="alice@example.org",
        message_id="<ours-1@postdesk>",
        in_reply_to="<q1@example.org>",
    )

    sent = client.send(reply, thread_id=original["threadId"])

    assert sent["threadId"] == original["threadId"]
    assert client.find_by_rfc822_id("<ours-1@postdesk>") == [sent["id"]]
    assert client.find_by_rfc822_id("<never-sent@postdesk>") == []


def test_credentials_for_each_kind():
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2 import credentials as user_credentials

    anonymous = credentials_for("sandbox", None, MAILBOX)
    oauth = credentials_for("oauth", {"client_id": "id", "client_secret": "s", "refresh_token": "r"}, MAILBOX)

    assert isinstance(anonymous, AnonymousCredentials)
    assert isinstance(oauth, user_credentials.Credentials) and oauth.refresh_token == "r"
    with pytest.raises(GmailCredentialsError):
        credentials_for("oauth", {"client_id": "id"}, MAILBOX)
    with pytest.raises(GmailCredentialsError):
        credentials_for("service_account", None, MAILBOX)
    with pytest.raises(GmailCredentialsError):
        credentials_for("service_account", {"type": "service_account", "private_key": "nope"}, MAILBOX)


def test_a_service_account_is_delegated_to_the_mailbox(service_account_info):
    credentials = credentials_for("service_account", service_account_info, MAILBOX)
    assert credentials._subject == MAILBOX
    assert credentials.service_account_email == service_account_info["client_email"]


def test_a_stored_mailbox_gets_a_working_client_with_the_apps_settings(app, session, gmail):
    from server.base.models import AuthKind
    from server.gmail.client import client_for_mailbox
    from server.services.accounts import MailboxSpec, add_mailbox

    mailbox = add_mailbox(session, MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url))
    with client_for_mailbox(mailbox) as client:
        profile = client.profile()

    assert profile["emailAddress"] == MAILBOX
    assert client.retry.max_attempts == app.config["GMAIL_MAX_ATTEMPTS"]
    assert client.batch_size == app.config["GMAIL_BATCH_SIZE"]


def _big_reply(size: int, **headers: str) -> bytes:
    """A reply whose text body makes the message about ``size`` bytes (base64 makes it 4/3 as big)."""
    line = "Подробный отчёт о доставке, строка за строкой.\r\n"
    body = line * (size // len(line.encode()) + 1)
    return make_email("Re: Question", body, sender=MAILBOX, to="alice@example.org", **headers)


def test_mail_too_big_for_a_json_body_is_uploaded_resumably_in_its_thread(gmail, gmail_client, deliver):
    # Failed before: the 5.3 MB JSON body of a 4 MB message was refused with 413.
    original = deliver(make_email("Question", message_id="<q2@example.org>"))
    client = gmail_client()
    big = _big_reply(4 * 1024 * 1024, message_id="<big@postdesk>", in_reply_to="<q2@example.org>")
    small = make_email("Re: Question", "Short answer", sender=MAILBOX, to="alice@example.org",
                       in_reply_to="<q2@example.org>")  # fmt: skip

    sent_big = client.send(big, thread_id=original["threadId"])
    sent_small = client.send(small, thread_id=original["threadId"])
    stored = gmail.sandbox.user(MAILBOX).messages[sent_big["id"]]

    assert len(big) > 4 * 1024 * 1024 and stored.raw == big  # byte for byte
    assert sent_big["threadId"] == sent_small["threadId"] == original["threadId"]
    quota = sandbox_quota(gmail)
    assert quota["uploads"] == {"resumable": 1}  # the small one went as JSON
    assert quota["calls_by_method"]["messages.send"] == 2 and client.meter.by_method["messages.send"] == 200


def test_a_failed_chunk_is_sent_again_and_the_upload_continues_its_session(gmail, gmail_client):
    client = gmail_client()
    big = _big_reply(9 * 1024 * 1024)  # three chunks of at most 4 MiB
    faults(gmail, status=503, rate=1.0, methods=["messages.send"], count=2)  # the start, then a chunk

    sent = client.send(big)

    assert client.meter.retries == 2 and client.meter.calls["messages.send"] == 1
    assert gmail.sandbox.user(MAILBOX).messages[sent["id"]].raw == big
    quota = sandbox_quota(gmail)
    assert quota["uploads"] == {"resumable": 1} and quota["calls_by_method"] == {"messages.send": 1}


def test_a_lost_answer_to_the_last_chunk_is_learnt_from_the_session_not_sent_twice(gmail, gmail_client):
    import httplib2

    client = gmail_client()
    http = client.service._http.http
    real_request = http.request
    broken: list[str] = []

    def request(uri, method="GET", *args, **kwargs):
        response = real_request(uri, method, *args, **kwargs)
        if method == "PUT" and "bytes */" not in str(kwargs.get("headers", {})) and not broken:
            broken.append(uri)  # Gmail took the bytes; the connection broke before the answer came
            raise httplib2.ServerNotFoundError("connection reset")
        return response

    http.request = request
    sent = client.send(_big_reply(6 * 1024 * 1024))

    sent_copies = [m for m in gmail.sandbox.user(MAILBOX).messages.values() if "SENT" in m.label_ids]
    assert broken and [m.id for m in sent_copies] == [sent["id"]]


def test_a_json_send_whose_connection_broke_is_not_repeated(gmail, gmail_client):
    import httplib2

    client = gmail_client()
    http = client.service._http.http
    real_request = http.request

    def request(uri, method="GET", *args, **kwargs):
        real_request(uri, method, *args, **kwargs)
        raise httplib2.ServerNotFoundError("connection reset")

    http.request = request
    with pytest.raises(GmailUnavailable, match="outcome unknown"):
        client.send(make_email("Once", sender=MAILBOX, to="bob@example.org", message_id="<once@postdesk>"))
    http.request = real_request

    assert client.find_by_rfc822_id("<once@postdesk>") != []  # the Outbox confirms it this way
    assert len([m for m in gmail.sandbox.user(MAILBOX).messages.values() if "SENT" in m.label_ids]) == 1


def test_mail_above_gmails_35_mb_is_refused_before_anything_is_sent(gmail, gmail_client):
    client = gmail_client()

    with pytest.raises(GmailApiError) as refused:
        client.send(b"To: alice@example.org\r\n\r\n" + b"x" * 36_700_161)

    assert refused.value.status == 413 and "above Gmail's limit" in str(refused.value)
    assert sandbox_quota(gmail)["calls_by_method"] == {}


def test_a_batch_part_is_written_as_the_library_writes_it(gmail_client):
    """The batch parts skip the email package's header folding, and say exactly the same."""
    from googleapiclient.http import BatchHttpRequest

    from server.gmail.client import PlainBatch

    client = gmail_client()
    requests = [
        client.messages.get(userId=MAILBOX, id="18c0ffee", format="full"),
        client.messages.get(userId=MAILBOX, id="x" * 200, format="raw"),
        client.messages.modify(userId=MAILBOX, id="18c0ffee", body={"addLabelIds": ["Label_1"]}),
        client.users.labels().create(userId=MAILBOX, body={"name": "Постдеск/Открыт"}),
    ]
    for request in requests:
        ours = PlainBatch(batch_uri="http://127.0.0.1:9/batch")._serialize_request(request)
        theirs = BatchHttpRequest(batch_uri="http://127.0.0.1:9/batch")._serialize_request(request)
        assert ours == theirs
