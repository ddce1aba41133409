"""Operations: /metrics in Prometheus' format (who may read it, what it says), /healthz for the web
and for the worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from server.base.models import OutboxKind
from server.flows.clock.lease import acquire
from server.gmail.send import enqueue


def _families(text: str) -> dict[str, dict[tuple, float]]:
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_tell_each_mailboxs_sync_and_waiting_work(app, client, session, mailbox):
    mailbox.last_sync_at = datetime.now(UTC) - timedelta(seconds=90)
    row = enqueue(session, mailbox=mailbox, kind=OutboxKind.NOTIFICATION, key="k1", to=["a@example.com"],
                  subject="s", text="t")  # fmt: skip
    row.created_at = datetime.now(UTC) - timedelta(minutes=5)
    session.commit()
    client.get("/healthz")

    answer = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})

    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    metrics = _families(answer.get_data(as_text=True))
    box = (("mailbox", mailbox.address),)
    assert 85 < metrics["postdesk_sync_lag_seconds"][box] < 600
    assert metrics["postdesk_outbox_waiting"][box] == 1
    assert metrics["postdesk_outbox_oldest_age_seconds"][box] >= 290
    assert metrics["postdesk_sync_failing"][box] == 0 and metrics["postdesk_mailbox_paused"][box] == 0
    assert any(dict(k).get("route") == "/healthz" for k in metrics["postdesk_http_request_seconds_count"])


def test_metrics_are_for_this_machine_or_the_token_only(app, client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403
    proxied = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert proxied.status_code == 403  # a proxy on this machine passing a stranger's request on
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_healthz_tells_a_running_worker_from_none(app, client, session):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/healthz?role=worker").status_code == 503  # nobody holds the lease
    assert client.get("/healthz?role=nonsense").status_code == 400
    acquire(session, "host:1", now=datetime.now(UTC), ttl=timedelta(seconds=60))
    answer = client.get("/healthz?role=worker")
    assert answer.status_code == 200 and answer.json["holder"] == "host:1"
    acquire(session, "host:1", now=datetime.now(UTC) - timedelta(seconds=120), ttl=timedelta(seconds=60))
    assert client.get("/healthz?role=worker").status_code == 503  # a stuck worker: its lease ran out


def test_json_logs_are_one_object_a_line(tmp_path):
    import json
    import subprocess
    import sys

    code = (
        "import logging; from server import create_app; "
        f"create_app({{'DATABASE_URL': 'sqlite:///{tmp_path}/l.sqlite3', 'INSTANCE_PATH': '{tmp_path}/i', "
        "'LOG_FORMAT': 'json'}); logging.getLogger('server.sync').info('sync_done mailbox=%s', 'a@example.com')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert line["message"] == "sync_done mailbox=a@example.com" and line["levelname"] == "INFO"
    assert line["name"] == "server.sync"
