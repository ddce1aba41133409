"""The REST API's blueprint, its spectree (the OpenAPI document) and the checks before every view.

Every view is described by pydantic models through spectree, which validates each request (a 400
problem naming the fields) and each answer, and from which ``/api/v1/openapi.json`` (OpenAPI 3.1) is
made. :mod:`server.faces.api.auth` checks the token, its rate limit and the view's scope first. Errors are
RFC 9457 problem documents (:func:`server.faces.errors.problem_response`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import ValidationError
from spectree import SpecTree

from server.base.db import get_session
from server.faces.api.auth import NoSuchMailbox, add_rate_headers, guard, public
from server.faces.api.schemas import Problem
from server.faces.errors import PROBLEM_TYPE, problem_response

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


def _validation_problem(
    request: Any, response: Any, error: Exception | None, instance: Any, adapter: Any
) -> None:
    """spectree's hook after a request was validated: turn its error answer into a 400 problem."""
    if error is None or response is None:
        return
    problems = (
        error.errors(include_url=False, include_context=False) if isinstance(error, ValidationError) else []
    )
    fields = [
        {"field": ".".join(str(part) for part in problem.get("loc", ())), "problem": problem.get("msg", "")}
        for problem in problems
    ]
    named = "; ".join(f"{f['field'] or 'body'}: {f['problem']}" for f in fields[:5])
    answer = problem_response(400, "Bad Request", named or "The request is not valid.", errors=fields)
    response.set_data(answer.get_data())
    response.status_code = 400
    response.mimetype = PROBLEM_TYPE


tree = SpecTree(
    "flask",
    mode="strict",
    title="Postdesk API",
    version="1",
    description="Tickets, customers, agents, mailboxes, templates and reports of a Postdesk helpdesk. "
    "Authenticate with a personal access token: `Authorization: Bearer pd_…` (see docs/api.md).",
    path="api/v1/openapi",  # spectree leaves out the routes under this path: only its own page lives there
    naming_strategy=lambda model: model.__name__,
    page_templates={},
    validation_error_status=400,
    validation_error_model=Problem,
    before=_validation_problem,
)

#: Problems every operation may answer, besides its own (``412`` for a conditional update).
COMMON_PROBLEMS = {
    "400": "The request is not valid (the problem names the fields).",
    "401": "No token, or the token is unknown, revoked or expired.",
    "403": "The token lacks the scope, or its owner the right, for this.",
    "404": "No such thing (a ticket, mailbox, template …), or not one the token's owner may see.",
    "429": "The token's rate limit is used up (see Retry-After).",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: spectree's, with the token scheme and the problem answers added."""
    cached: dict[str, Any] | None = current_app.extensions.get("postdesk_openapi")
    if cached is not None:
        return cached
    spec: dict[str, Any] = copy.deepcopy(tree.spec)
    spec["components"]["securitySchemes"] = {
        "token": {"type": "http", "scheme": "bearer", "description": "A Postdesk API token (pd_…)."}
    }
    spec["security"] = [{"token": []}]
    problem = {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    rate_headers = {
        name: {"schema": {"type": "string"}}
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            wanted = dict(COMMON_PROBLEMS)
            if method == "patch":
                wanted["412"] = "If-Match named an older version of the ticket; nothing changed."
            if path.endswith(("/merge", "/unmerge", "/split")):
                wanted["409"] = "The change cannot be done (or undone) as asked; the problem says why."
            for code, description in wanted.items():
                answers[code] = {"description": description}
            for code, answer in answers.items():
                if code.startswith(("4", "5")):
                    answer["content"] = copy.deepcopy(problem)
                else:
                    answer.setdefault("headers", {}).update(copy.deepcopy(rate_headers))
    schemas = spec["components"]["schemas"]
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    current_app.extensions["postdesk_openapi"] = spec
    return spec


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.before_request
def _check_caller() -> Response | None:
    return guard(get_session()) or _check_body()


def _check_body() -> Response | None:
    """A request with a body sends one JSON object (spectree would read anything else as ``{}``)."""
    if request.url_rule is None or request.method not in ("POST", "PATCH", "PUT"):
        return None
    try:
        body = json.loads(request.get_data(cache=True) or b"null") if request.is_json else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return problem_response(
            400, "Bad Request", "Send one JSON object, with Content-Type: application/json."
        )
    return None


bp.after_request(add_rate_headers)


@bp.errorhandler(NoSuchMailbox)
def _no_such_mailbox(_exc: NoSuchMailbox) -> Response:
    return problem_response(404, "Not Found", "No such mailbox.")
