"""The API tokens and webhooks pages in Chromium, as an admin uses them with `postdesk web` running:
make a token (shown once) and call the API with it; add a webhook to a receiver, send a test and
read the delivery log; revoke the token. Screenshots for docs/api.md."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from oidc_issuer import StandInGoogle
from test_previewer_browser import ARTIFACTS, CHROMIUM_FLAGS, _chromium
from test_settings_browser import _prepare, settings_env, start_web
from test_webhooks import Receiver


def _api(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["items"]
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_admin_makes_a_token_and_a_webhook_in_the_browser(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    google = StandInGoogle()
    receiver = Receiver()
    # Demo mode takes http://, and the operator allows this machine: the receiver runs on loopback.
    env = settings_env(tmp_path, google) | {
        "POSTDESK_DEMO": "1",
        "POSTDESK_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
    }
    _prepare(env)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    web, base = start_web(env)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/")
                page.locator("nav").get_by_role("link", name="API tokens").click()
                form = page.locator("#make-token")
                form.get_by_label("Name (what the token is for)").fill("CRM sync")
                form.get_by_label("tickets:read").check()
                form.get_by_label("tickets:write").check()
                form.get_by_role("button", name="Make the token").click()
                secret = page.locator("#token-secret").inner_text()
                assert secret.startswith("pd_")
                expect(page.locator("#tokens")).to_contain_text("CRM sync")
                page.screenshot(path=str(ARTIFACTS / "settings-api-tokens.png"), full_page=True)
                assert _api(base, secret) == 200

                # A webhook: an address inside is refused at the field, the receiver is accepted.
                page.locator("nav").get_by_role("link", name="Webhooks").click()
                add = page.locator("#add-webhook")
                add.get_by_label("Address (https://…)").fill("https://169.254.169.254/latest/meta-data/")
                add.get_by_role("button", name="Add").click()
                expect(page.locator(".error")).to_contain_text("link-local")
                add.get_by_label("Address (https://…)").fill(receiver.url)
                add.get_by_role("button", name="Add").click()
                expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
                page.get_by_role("link", name=receiver.url).click()
                page.get_by_role("button", name="Send test").click()
                expect(page.locator(".flash")).to_contain_text("The receiver answered 200")
                expect(page.locator("#deliveries")).to_contain_text("ping")
                page.screenshot(path=str(ARTIFACTS / "settings-webhook.png"), full_page=True)
                assert [json.loads(r["body"])["type"] for r in receiver.received] == ["ping"]

                # Revoke the token: the API refuses it at once.
                page.locator("nav").get_by_role("link", name="API tokens").click()
                page.locator("#tokens tr", has_text="CRM sync").get_by_role("button", name="Revoke").click()
                expect(page.locator(".flash")).to_contain_text("was revoked")
                assert _api(base, secret) == 401
            finally:
                browser.close()
    finally:
        web.stop()
        google.close()
        receiver.close()
    for name in ("api-tokens", "webhook"):
        assert (ARTIFACTS / f"settings-{name}.png").stat().st_size > 5_000
