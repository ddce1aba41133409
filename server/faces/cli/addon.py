"""``postdesk addon deployment|manifest``: the files Google reads about the add-on, from the settings."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from server.faces.addon import manifest as files
from server.faces.cli.common import CliError

URL_HELP = "The backend's public https URL (default: POSTDESK_ADDON_PUBLIC_URL)."


@click.group("addon")
def addon_group() -> None:
    """The Gmail add-on's files for Google (docs/addon.md)."""


def _base_url(url: str | None) -> str:
    config = current_app.config
    demo = bool(config["DEMO"])
    chosen = url or str(config["ADDON_PUBLIC_URL"] or "") or (files.EXAMPLE_URL if demo else "")
    if not chosen:
        raise CliError("no URL: pass --url https://… or set POSTDESK_ADDON_PUBLIC_URL")
    try:
        return files.base_url(chosen, demo=demo)
    except files.UrlError as exc:
        raise CliError(str(exc)) from exc


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc}") from exc
    click.echo(f"wrote {output}", err=True)


@addon_group.command("deployment")
@click.option("--url", metavar="URL", help=URL_HELP)
@click.option("--output", metavar="FILE", help="Write here (default: standard output).")
@with_appcontext
def deployment_command(url: str | None, output: str | None) -> None:
    """The HTTP runtime's deployment file, for gcloud workspace-add-ons deployments create."""
    _write(files.as_text(files.deployment(_base_url(url))), output)


@addon_group.command("manifest")
@click.option("--url", metavar="URL", help=URL_HELP)
@click.option("--output", metavar="FILE", help="Write appsscript.json here (default: standard output).")
@click.option("--shim-output", metavar="FILE", help="Also write the shim's Config.js (its backend URL) here.")
@with_appcontext
def manifest_command(url: str | None, output: str | None, shim_output: str | None) -> None:
    """appsscript.json for the Apps Script shim (and its Config.js), for clasp push."""
    base = _base_url(url)
    _write(files.as_text(files.manifest(base)), output)
    if shim_output is not None:
        _write(files.shim_config(base), shim_output)
