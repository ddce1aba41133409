"""Demo-only pages (the add-on previewer, "sign in as") exist only for this machine in demo mode."""

from __future__ import annotations

import ipaddress

from flask import abort, current_app, request


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local_demo() -> bool:
    """Demo mode, a loopback client, a loopback Host and a server bound to loopback."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    bound = request.environ.get("SERVER_NAME")
    return bool(
        current_app.config["DEMO"]
        and is_loopback(request.remote_addr)
        and is_loopback(host)
        and (bound is None or is_loopback(bound))
    )


def this_machine_only() -> None:
    """404 unless :func:`is_local_demo`, as if the page did not exist."""
    if not is_local_demo():
        abort(404)
