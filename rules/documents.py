"""Reading YAML or JSON that a person wrote: rule sets, SLA policies, calendars, settings files.

Every face reads such text through :func:`load_document`, so any text gives data or a
:class:`DocumentError` with its line — never another exception. Two choices differ from PyYAML's
safe loader: values shaped like dates and times stay text (``2026-13-45`` is not a crash, and the
code that wants a date parses and names the bad value), and nesting deeper than Python's stack is
refused as a problem.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from rules.errors import DocumentError

__all__ = ["DocumentError", "load_document"]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _PersonLoader(yaml.SafeLoader):
    """The safe loader without implicit timestamps."""


_PersonLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(text: str) -> Any:
    """The data of ``text``: JSON when it starts like JSON, YAML otherwise; empty text is ``None``."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
        except RecursionError as exc:
            raise DocumentError("not valid JSON: nested too deeply") from exc
    try:
        return yaml.load(text, Loader=_PersonLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise DocumentError(f"not valid YAML: {exc.problem or exc.context or exc}", line, column) from exc
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise DocumentError("not valid YAML: nested too deeply") from exc
    except (ValueError, TypeError) as exc:  # a constructor's own failure (PyYAML lets some escape)
        raise DocumentError(f"not valid YAML: {exc}") from exc
