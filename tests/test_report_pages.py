"""``/reports``: who sees which figures, the drill-down, the CSV, bad filters, and nonsense from a
signed-in manager or agent (never a 500)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_history import Played, play
from web_support import sign_in

from server.base.db import get_session
from server.base.models import Agent, Mailbox, Ticket

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def history(web, team):
    """Four tickets in the team's mailbox over the last days: the agent's answered and solved one, the
    agent's overdue one, the manager's one with a hostile subject, and an unassigned one."""
    h = timedelta(hours=1)
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        box.settings = {**(box.settings or {}), "calendar": {"timezone": "UTC", "hours": "always"}}
        people = [db.get(Agent, team["agent"]), db.get(Agent, team["manager"])]
        plays = [
            Played(0, NOW - 50 * h, "normal", 0, "shop.example", [(NOW - 49 * h, "agent_reply"), (NOW - 48 * h, "solve"),
                                                                    (NOW - 47 * h, "rate_bad")]),
            Played(0, NOW - 30 * h, "urgent", 0, "shop.example", []),
            Played(0, NOW - 20 * h, "high", 1, "other.example", [(NOW - 19 * h, "agent_reply")]),
            Played(0, NOW - 10 * h, "low", None, "other.example", []),
        ]  # fmt: skip
        for played in plays:
            play(db, box, people, played)
        hostile = db.get(Ticket, plays[2].ticket_id)
        hostile.subject = '=HYPERLINK("http://evil.example","click") <script>alert(1)</script>'
        db.commit()
        return [p.ticket_id for p in plays]


def _client(web, google, role):
    client = web.test_client()
    sign_in(client, google, f"{role}@example.com")
    return client


def test_a_manager_reads_every_figure_and_drills_from_overdue_to_its_tickets(web, google, team, history):
    client = _client(web, google, "manager")
    page = client.get("/reports?days=7")
    text = page.get_data(as_text=True)

    assert page.status_code == 200
    assert 'id="tile-new"' in text and 'id="per-agent"' in text and "<svg" in text
    assert "<script>alert(1)</script>" not in text  # the subject is shown escaped
    assert client.get("/reports?days=7&tag=vip").status_code == 200  # a tag filter beside the per-tag table
    overdue = client.get("/reports/tickets?days=7&set=overdue").get_data(as_text=True)
    with web.app_context():
        numbers = {t.id: t.number for t in get_session().query(Ticket).filter(Ticket.id.in_(history))}
    # the urgent one nobody answered, and the high one past its resolution target
    assert _listed(overdue) == {numbers[history[1]], numbers[history[2]]}
    mine = client.get(f"/reports/tickets?days=7&set=new&agent={team['agent']}").get_data(as_text=True)
    assert _listed(mine) == {numbers[history[0]], numbers[history[1]]}


def _listed(page: str) -> set[int]:
    return {int(n) for n in re.findall(r'class="ticket" data-number="(\d+)"', page)}


def test_the_csv_streams_every_ticket_with_its_timings_and_defuses_formulas(web, google, team, history):
    client = _client(web, google, "manager")
    answer = client.get("/reports/export.csv?days=7&table=tickets&set=new")

    assert answer.status_code == 200 and answer.mimetype == "text/csv" and answer.is_streamed
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(rows) == 4
    solved = next(r for r in rows if r["status"] == "solved")
    assert solved["first_response_minutes"] == "60" and solved["resolution_minutes"] == "120"
    assert solved["first_response_breached"] == "false" and solved["agent_replies"] == "1"
    assert solved["customer"].endswith("@shop.example")
    hostile = next(r for r in rows if "HYPERLINK" in r["subject"])
    assert hostile["subject"].startswith("'=")
    per_day = client.get("/reports/export.csv?days=7&table=days").get_data(as_text=True).splitlines()
    assert per_day[0].startswith("day,new,solved") and len(per_day) == 8
    ages = client.get("/reports/export.csv?days=7&table=ages").get_data(as_text=True).splitlines()
    assert (
        ages[0] == "status,1d,3d,7d,30d,older" and ages[1] == "open,2,1,0,0,0"
    )  # 10 and 20 hours old; 30 hours
    subjects = client.get("/reports/export.csv?days=7&table=subjects").get_data(as_text=True).splitlines()
    assert subjects[0] == "subject,new" and len(subjects) == 5
    by_domain = client.get("/reports/export.csv?days=7&table=tickets&domain=other.example").get_data(
        as_text=True
    )
    assert len(by_domain.splitlines()) == 3


def test_an_agent_sees_only_their_own_figures(web, google, team, history):
    client = _client(web, google, "agent")
    text = client.get(f"/reports?days=7&agent={team['manager']}").get_data(as_text=True)

    assert 'id="per-agent"' not in text and 'name="agent"' not in text
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/reports/export.csv?days=7&agent={team['manager']}").get_data(as_text=True))))  # fmt: skip
    assert len(rows) == 2 and {r["assignee"] for r in rows} == {"agent@example.com"}
    assert client.get("/reports/export.csv?table=agents").status_code == 403


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("from=2026-13-01", "from: not a date"),
        ("days=0", "days: from 1 to"),
        ("days=abc", "days: not a number"),
        ("from=2026-11-20&to=2026-11-01", "period: the period ends before it starts"),
        ("from=2000-01-01&to=2026-01-01", "at most"),
        ("mailbox=999999", "mailbox: not one you may read"),
        ("agent=999999", "agent: no such agent"),
        ("priority=critical", "priority: one of"),
        ("domain=<x>", "domain: a domain"),
        ("set=everything", "set: one of"),
        ("table=secrets", "table: one of"),
    ],
)
def test_bad_filters_get_a_400_that_says_which(web, google, team, query, problem):
    client = _client(web, google, "manager")
    answer = client.get(f"/reports/export.csv?{query}")

    assert answer.status_code == 400 and problem in answer.get_data(as_text=True)


def test_the_page_speaks_russian_to_a_russian_reader(web, google, team, history):
    with web.app_context():
        db = get_session()
        db.get(Agent, team["manager"]).locale = "ru"
        db.commit()
    client = _client(web, google, "manager")
    text = client.get("/reports").get_data(as_text=True)
    assert "Отчёты" in text and "Новые обращения" in text


FILTER_KEYS = ["days", "from", "to", "mailbox", "agent", "tag", "priority", "domain", "set", "table", "page"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/reports", "/reports/tickets", "/reports/export.csv", "/reports/help"]),
    role=st.sampled_from(["manager", "agent"]),
    junk=st.dictionaries(
        st.sampled_from(FILTER_KEYS),
        st.one_of(st.text(max_size=40), st.integers(-5, 10**13).map(str)),
        max_size=6,
    ),  # fmt: skip
)
def test_nonsense_filters_from_a_signed_in_person_never_get_a_server_error(
    web, google, team, path, role, junk
):
    client = _client(web, google, role)
    answer = client.get(path, query_string=junk)
    answer.get_data()  # a streamed CSV fails while it streams, if it fails
    assert answer.status_code in (200, 400, 403)


def test_digits_that_are_not_decimal_are_a_clear_400(web, google, team):
    """ "²" is a digit to str.isdigit() but no number to int(): the fuzz above once found it as a 500."""
    client = _client(web, google, "manager")
    for value in ("²", "3²", "½"):
        assert client.get("/reports", query_string={"days": value}).status_code == 400
    assert (
        client.get("/reports", query_string={"days": "٧"}).status_code == 200
    )  # an Arabic-Indic 7 is a number


def test_a_tiles_arrow_is_green_only_when_the_change_is_for_the_better():
    from server.services.figures.tiles import Tile

    assert Tile("first response", 10, 20, "minutes", lower_is_better=True).better is True
    assert Tile("solved", 10, 20, "count").better is False
    assert Tile("new tickets", 10, 20, "count", lower_is_better=None).better is None  # neither way is better
    assert Tile("solved", 10, None, "count").trend == "none" and Tile("solved", 3, 3, "count").better is None


def test_a_period_long_ago_shows_and_one_before_the_calendar_is_a_clear_400(web, google, team):
    """Found by the fuzz above: a valid period three years back made the backlog (counted back from
    now) a period longer than allowed, and "to" in year 1 overflowed the date arithmetic."""
    client = _client(web, google, "manager")
    today = datetime.now(UTC).date()
    old = today.replace(year=today.year - 3)
    assert (
        client.get(
            "/reports", query_string={"from": old.isoformat(), "to": (old + timedelta(days=30)).isoformat()}
        ).status_code
        == 200
    )
    assert client.get("/reports", query_string={"to": "0001-01-03"}).status_code == 400
