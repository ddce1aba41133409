"""Schemathesis against the live OpenAPI document: any request it can make — valid or not — as a
signed-in admin and as an agent gets no 500, and every answer matches the document (status, content
type, body, headers). Runs on SQLite and, in CI's second pass, on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_support import Desk
from helpers import examples
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server.faces.api.base import openapi_document

EXAMPLES = examples(40)
# Not checked: "a schema-valid request is accepted". The API refuses, with a 400 problem, what a schema
# cannot say: a cursor it did not issue, a snooze in the past, a reply with both a template and text,
# an assignee outside the ticket's mailbox. Everything else schemathesis checks is checked.
#: Every operation of the document (a test below fails when the document has one more or one less).
OPERATIONS = [
    ("GET", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{ticket_id}"),
    ("PATCH", "/api/v1/tickets/{ticket_id}"),
    ("POST", "/api/v1/tickets/{ticket_id}/notes"),
    ("POST", "/api/v1/tickets/{ticket_id}/replies"),
    ("POST", "/api/v1/tickets/{ticket_id}/merge"),
    ("POST", "/api/v1/tickets/{ticket_id}/unmerge"),
    ("POST", "/api/v1/tickets/{ticket_id}/split"),
    ("GET", "/api/v1/articles"),
    ("POST", "/api/v1/articles"),
    ("GET", "/api/v1/articles/{article_id}"),
    ("PATCH", "/api/v1/articles/{article_id}"),
    ("DELETE", "/api/v1/articles/{article_id}"),
    ("POST", "/api/v1/tickets/{ticket_id}/follow"),
    ("POST", "/api/v1/tickets/{ticket_id}/unfollow"),
    ("GET", "/api/v1/customers"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/mailboxes"),
    ("GET", "/api/v1/templates"),
    ("POST", "/api/v1/templates/{template_id}/render"),
    ("GET", "/api/v1/reports/overview"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"),
]


#: The document, loaded once per test process (~0.3 s each time); each test points it at its own app.
_LOADED: list[Any] = []


def _schema(app: Any) -> Any:
    if not _LOADED:
        _LOADED.append(schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app))
    _LOADED[0].app = app
    return _LOADED[0]


@pytest.mark.parametrize("who", ["admin", "anna"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_generated_request_gets_a_documented_answer_and_never_a_500(
    api_desk: Desk, who: str, mode: GenerationMode, method: str, path: str
) -> None:
    operation = _schema(api_desk.app)[path][method]
    operation.app = api_desk.app  # an operation keeps the app it was made with: this test's, always
    headers = {"Authorization": f"Bearer {api_desk.tokens[who]}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        # A case that breaks the headers on purpose (drops Authorization) goes as generated: 401 expected.
        breaks_headers = any(
            str(getattr(where, "value", where)) == "header" and info.mode is GenerationMode.NEGATIVE
            for where, info in case.meta.components.items()
        ) if case.meta else False  # fmt: skip
        case.call_and_validate(
            headers=None if breaks_headers else headers, excluded_checks=[positive_data_acceptance]
        )

    reached: list[str] = []
    wsgi = api_desk.app.wsgi_app
    api_desk.app.wsgi_app = lambda environ, start: (
        reached.append(environ["PATH_INFO"]) or wsgi(environ, start)
    )  # type: ignore[method-assign]
    call()
    assert reached, "the generated requests went to another test's app"


def test_the_operations_above_are_the_document_s(api_desk: Desk) -> None:
    document = api_desk.client.get("/api/v1/openapi.json").json
    found = {
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    }
    assert found == set(OPERATIONS)


def test_the_document_is_openapi_3_1_with_the_token_scheme_and_problem_answers(api_desk: Desk) -> None:
    answer = api_desk.client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = answer.json
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A Postdesk API token (pd_…).",
    }
    tickets = document["paths"]["/api/v1/tickets/{ticket_id}"]
    assert set(tickets) == {"get", "patch"}
    assert "412" in tickets["patch"]["responses"] and "412" not in tickets["get"]["responses"]
    assert tickets["get"]["responses"]["401"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    with api_desk.app.app_context():
        assert openapi_document() == document
