"""The app factory, configuration sources and the health check."""

from __future__ import annotations

from server import create_app


def test_environment_variables_configure_the_app(monkeypatch, tmp_path):
    monkeypatch.setenv("POSTDESK_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    monkeypatch.setenv("POSTDESK_POLL_SECONDS", "15")
    monkeypatch.setenv("POSTDESK_INSTANCE_PATH", str(tmp_path / "inst"))

    app = create_app()

    assert app.config["DATABASE_URL"].endswith("env.sqlite3")
    assert app.config["POLL_SECONDS"] == 15  # JSON-parsed, so a number
    assert app.instance_path == str(tmp_path / "inst")


def test_defaults_put_sqlite_and_secrets_in_the_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("POSTDESK_DATABASE_URL", raising=False)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst")})
    again = create_app({"INSTANCE_PATH": str(tmp_path / "inst")})

    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'inst' / 'postdesk.sqlite3'}"
    assert app.config["POLL_SECONDS"] == 60 and app.config["FULL_SYNC_DAYS"] == 30
    assert app.config["SECRET_KEY"] and app.config["SECRET_KEY"] == again.config["SECRET_KEY"]
    assert (tmp_path / "inst" / "secret.key").stat().st_mode & 0o777 == 0o600


def test_explicit_config_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POSTDESK_POLL_SECONDS", "15")
    app = create_app({"POLL_SECONDS": 5, "INSTANCE_PATH": str(tmp_path)})
    assert app.config["POLL_SECONDS"] == 5


def test_healthz_reports_a_working_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_healthz_is_503_when_the_database_is_gone(tmp_path):
    app = create_app(
        {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "INSTANCE_PATH": str(tmp_path)}
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"


def test_unknown_pages_answer_one_json_error_shape(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert set(response.json["error"]) == {"code", "message"}


def test_the_front_page_speaks_the_browsers_language(client):
    english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    russian = client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert english.status_code == 200 and "A helpdesk that lives inside Gmail." in english.text
    assert 'lang="ru"' in russian.text and "Служба поддержки внутри Gmail." in russian.text


_START_ONE = """
import gc, sys
gc.disable()  # as the postdesk command builds its app: the race is the point, not the imports
from server import create_app
app = create_app({"INSTANCE_PATH": sys.argv[1], "DEMO": True})
print(app.config["SECRET_KEY"])
"""


def test_processes_starting_together_share_one_set_of_generated_keys(tmp_path):
    """gunicorn's workers start at once: each must end with the same keys, none with a half-written one."""
    import subprocess
    import sys

    for attempt in range(2):
        folder = tmp_path / f"inst{attempt}"
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", _START_ONE, str(folder)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        keys = {start.communicate(timeout=60)[0].strip() for start in starts}
        assert len(keys) == 1 and "" not in keys
        assert sorted(p.name for p in folder.iterdir()) == [
            "addon-demo-key.pem",
            "secret.key",
            "translations",
        ]
        assert [p.name for p in (folder / "translations" / "ru" / "LC_MESSAGES").iterdir()] == ["messages.mo"]
        assert (folder / "addon-demo-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_the_front_page_is_the_shell_and_in_the_demo_shows_who_to_be_and_what_to_try(tmp_path, database_url):
    from server import create_app
    from server.base.db import get_engine, get_session, init_db
    from server.services.accounts import ensure_agent

    app = create_app(
        {"TESTING": True, "DEMO": True, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path)}
    )
    try:
        with app.app_context():
            init_db()
            ensure_agent(get_session(), "anna@example.com", "Anna Petrova")
            get_session().commit()
        local = {"environ_base": {"REMOTE_ADDR": "127.0.0.1"}, "base_url": "http://127.0.0.1:5000"}
        demo = app.test_client().get("/", **local)
        elsewhere = app.test_client().get(
            "/", environ_base={"REMOTE_ADDR": "203.0.113.9"}, base_url="http://postdesk.example.com"
        )
    finally:
        get_engine(app).dispose()  # PostgreSQL: no connection left for the garbage collector to find

    page = demo.get_data(as_text=True)
    assert demo.status_code == 200 and 'href="/static/settings.css"' in page  # the settings pages' shell
    assert 'name="lang" value="ru"' in page and 'href="/settings/"' in page and 'href="/reports"' in page
    assert 'action="/auth/demo"' in page and "Anna Petrova" in page and "What to try first" in page
    assert elsewhere.status_code == 200 and "Anna Petrova" not in elsewhere.get_data(as_text=True)
    assert 'action="/auth/demo"' not in elsewhere.get_data(as_text=True)
