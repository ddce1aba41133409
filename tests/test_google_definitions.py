"""Every document Google reads from Postdesk, or Postdesk reads from Google, against Google's own
published definitions, strictly: an unknown field is an error.

* The HTTP deployment file (``addon/deployment.json``): ``google.cloud.gsuiteaddons.v1.Deployment``
  (google-cloud-gsuiteaddons), whose add-on parts are ``google.apps.script.type``'s
  ``CommonAddOnManifest`` and ``gmail.GmailAddOnManifest`` (google-apps-script-type) — the messages
  the Workspace Add-ons API is made of.
* ``appsscript.json``: the Apps Script manifest has no machine-readable definition; its add-on part
  shares ``CommonAddOnManifest`` (parsed with it), the rest follows
  https://developers.google.com/apps-script/manifest and …/manifest/gmail (written out below).
* Cards: ``GoogleAppsCardV1Card`` from the chat.v1 discovery document (tests/addon_fixtures.py checks
  every card the add-on tests make).
* The Pub/Sub push body: ``PubsubMessage`` from the pubsub.v1 discovery document; the envelope around
  it follows https://cloud.google.com/pubsub/docs/push, its data
  https://developers.google.com/gmail/api/guides/push.
* Sign-in: the OpenID Connect discovery fields Postdesk uses, against Google's discovery document as
  https://developers.google.com/identity/openid-connect/openid-connect#discovery publishes it, checked
  as OpenID provider metadata by Authlib.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from addon_support import discovery_schema
from authlib.oidc.discovery import OpenIDProviderMetadata
from google.apps.script.type import CommonAddOnManifest
from google.apps.script.type.gmail import GmailAddOnManifest
from google.cloud.gsuiteaddons_v1.types import Deployment
from google.protobuf import json_format
from google.protobuf.message import Message

from server import create_app
from server.base.config import Defaults, WebDefaults
from server.faces.addon import manifest as files
from server.faces.push import notification
from server.faces.web.google import SIGN_IN_SCOPE
from server.gmail.sandbox.push import envelope

ROOT = Path(__file__).resolve().parent.parent


def strict(message_class: Any, document: Any) -> Message:
    """``document`` parsed as the protobuf message; json_format refuses unknown fields and wrong types."""
    message: Message = message_class.pb()()
    json_format.ParseDict(document, message, ignore_unknown_fields=False)
    return message


def repository_json(name: str) -> Any:
    return json.loads((ROOT / name).read_text(encoding="utf-8"))


# --- the HTTP deployment ---------------------------------------------------------------------------


def test_the_deployment_file_is_a_deployment_google_accepts() -> None:
    document = repository_json("addon/deployment.json")
    parsed = strict(Deployment, document)
    strict(CommonAddOnManifest, document["addOns"]["common"])
    gmail = strict(GmailAddOnManifest, document["addOns"]["gmail"])
    assert list(parsed.oauth_scopes) == files.SCOPES
    # Every trigger is a route of this backend, and the compose action is there under its new name.
    assert gmail.compose_trigger.actions[0].run_function == files.EXAMPLE_URL + "/addon/v1/compose"
    assert gmail.contextual_triggers[0].on_trigger_function == files.EXAMPLE_URL + "/addon/v1/message"


def test_the_old_hand_written_shape_is_refused() -> None:
    """The oracle can fail: the Apps Script manifest's compose trigger is not the Deployment's."""
    document = files.deployment(files.EXAMPLE_URL)
    document["addOns"]["gmail"]["composeTrigger"] = {
        "selectActions": [{"text": "x", "runFunction": "https://postdesk.example.com/addon/v1/compose"}]
    }
    with pytest.raises(json_format.ParseError, match="selectActions"):
        strict(Deployment, document)
    with pytest.raises(json_format.ParseError, match="draftAccess"):
        strict(GmailAddOnManifest, {"composeTrigger": {"actions": [], "draftAccess": "EVERYTHING"}})


@pytest.mark.parametrize(
    "url", ["https://helpdesk.example.org", "https://example.org/postdesk/", "https://[2001:db8::1]:8443"]
)
def test_a_deployment_for_any_https_url_parses(url: str) -> None:
    base = files.base_url(url, demo=False)
    document = files.deployment(base)
    strict(Deployment, document)
    text = json.dumps(document)
    assert "example.com" not in text
    assert all(trigger.startswith(base + "/addon/v1/") for trigger in _run_functions(document))


def _run_functions(document: Any) -> list[str]:
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("runFunction", "onTriggerFunction"):
                found.append(value)
            found.extend(_run_functions(value))
    elif isinstance(document, list):
        for item in document:
            found.extend(_run_functions(item))
    return found


# --- the Apps Script manifest ----------------------------------------------------------------------

#: https://developers.google.com/apps-script/manifest (top level), …/manifest/addons (addOns) and
#: …/manifest/gmail (gmail): the fields this project may use, strictly.
APPS_SCRIPT_MANIFEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["timeZone", "runtimeVersion", "oauthScopes", "addOns"],
    "properties": {
        "timeZone": {"type": "string"},
        "runtimeVersion": {"enum": ["V8", "STABLE", "DEPRECATED_ES5"]},
        "exceptionLogging": {"enum": ["NONE", "STACKDRIVER"]},
        "oauthScopes": {"type": "array", "items": {"type": "string", "pattern": "^(https://|openid$)"}},
        "urlFetchWhitelist": {"type": "array", "items": {"type": "string", "pattern": "^https://[^/]+/"}},
        "addOns": {
            "type": "object",
            "additionalProperties": False,
            "required": ["common", "gmail"],
            "properties": {
                "common": {"type": "object"},  # CommonAddOnManifest, parsed with the proto below
                "gmail": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["contextualTriggers"],
                    "properties": {
                        "contextualTriggers": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["unconditional", "onTriggerFunction"],
                                "properties": {
                                    "unconditional": {"type": "object", "maxProperties": 0},
                                    "onTriggerFunction": {"type": "string"},
                                },
                            },
                        },
                        "composeTrigger": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["selectActions"],
                            "properties": {
                                "draftAccess": {"enum": ["NONE", "METADATA"]},
                                "selectActions": {
                                    "type": "array",
                                    "maxItems": 1,  # one compose action per add-on
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["text", "runFunction"],
                                        "properties": {
                                            "text": {"type": "string"},
                                            "runFunction": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                        "homepageTrigger": {"type": "object"},
                    },
                },
            },
        },
    },
}

SHIM_FUNCTIONS = ("onHomepage", "onMyQueue", "onSettings", "onGmailMessage", "onGmailCompose")


def test_the_apps_script_manifest_follows_the_documented_manifest() -> None:
    document = repository_json("appsscript.json")
    jsonschema.validate(document, APPS_SCRIPT_MANIFEST)
    strict(CommonAddOnManifest, document["addOns"]["common"])
    # Each trigger names a function the shim defines.
    shim = (ROOT / "addon" / "Code.js").read_text(encoding="utf-8")
    for name in _run_functions(document):
        assert name in SHIM_FUNCTIONS and f"function {name}(" in shim
    # The URL-bearing fields name the backend the shim's Config.js names.
    assert document["urlFetchWhitelist"] == [files.EXAMPLE_URL + "/"]
    assert document["addOns"]["common"]["openLinkUrlPrefixes"] == [files.EXAMPLE_URL + "/"]


def test_the_documented_manifest_check_can_fail() -> None:
    document = files.manifest(files.EXAMPLE_URL)
    document["addOns"]["gmail"]["composeTrigger"] = {
        "actions": [{"runFunction": "onGmailCompose", "label": "x"}]
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, APPS_SCRIPT_MANIFEST)


# --- the repository's copies are the commands' output ----------------------------------------------


def _cli(*args: str, **config: Any) -> Any:
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "DEMO": True} | config)
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def test_the_repository_files_are_the_demo_output(tmp_path: Path) -> None:
    result = _cli("addon", "deployment")
    assert result.exit_code == 0, result.output
    assert result.stdout == (ROOT / "addon" / "deployment.json").read_text(encoding="utf-8")
    result = _cli(
        "addon", "manifest", "--output", str(tmp_path / "appsscript.json"),
        "--shim-output", str(tmp_path / "Config.js"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "appsscript.json").read_text() == (ROOT / "appsscript.json").read_text()
    assert (tmp_path / "Config.js").read_text() == (ROOT / "addon" / "Config.js").read_text()


def test_the_commands_take_the_configured_url_and_refuse_plain_http_outside_demo() -> None:
    result = _cli("addon", "deployment", DEMO=False, ADDON_PUBLIC_URL="https://desk.example.org/")
    assert result.exit_code == 0, result.output
    strict(Deployment, json.loads(result.stdout))
    assert "https://desk.example.org/addon/v1/homepage" in result.stdout
    for args in (["--url", "http://desk.example.org"], ["--url", "https://desk.example.org/?a=1"],
                 ["--url", "javascript:alert(1)"], []):  # fmt: skip
        result = _cli("addon", "manifest", *args, DEMO=False)
        assert result.exit_code == 2
        assert "https" in result.output or "URL" in result.output
    # Demo mode may name the previewer's plain-http loopback.
    result = _cli("addon", "deployment", "--url", "http://127.0.0.1:5000")
    assert result.exit_code == 0 and "http://127.0.0.1:5000/addon/v1/action" not in result.stdout
    assert "http://127.0.0.1:5000/addon/v1/message" in result.stdout


# --- Pub/Sub push ----------------------------------------------------------------------------------

#: https://cloud.google.com/pubsub/docs/push ("Receive messages"): the body of a push request.
PUSH_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message", "subscription"],
    "properties": {
        "message": {"$ref": "#/definitions/PubsubMessage"},
        "subscription": {"type": "string", "pattern": "^projects/[^/]+/subscriptions/[^/]+$"},
        "deliveryAttempt": {"type": "integer"},
    },
}


def test_the_sandbox_push_body_is_what_pub_sub_posts() -> None:
    message = discovery_schema("pubsub.v1.json", "PubsubMessage", "PubsubMessage")
    schema = PUSH_BODY | {"definitions": message["definitions"]}
    body = envelope("support@example.com", 4242)
    jsonschema.validate(body, schema)
    assert notification(body) == ("support@example.com", 4242)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body | {"message": body["message"] | {"ackId": "x"}}, schema)


def test_the_gmail_guide_s_example_notification_is_read() -> None:
    """https://developers.google.com/gmail/api/guides/push: base64url data, historyId as a string."""
    data = base64.urlsafe_b64encode(b'{"emailAddress": "user@example.com", "historyId": "1234567890"}')
    body = {
        "message": {"data": data.decode().rstrip("="), "messageId": "2070443601311540",
                    "publishTime": "2021-02-26T19:13:55.749Z"},
        "subscription": "projects/myproject/subscriptions/mysubscription",
    }  # fmt: skip
    assert notification(body) == ("user@example.com", 1234567890)
    tricky = base64.urlsafe_b64encode(b'{"emailAddress": "a@b.c", "historyId": 7, "note": "???"}')
    assert b"-" in tricky or b"_" in tricky
    assert notification({"message": {"data": tricky.decode()}}) == ("a@b.c", 7)


# --- sign-in with Google ---------------------------------------------------------------------------

#: Google's discovery document (https://accounts.google.com/.well-known/openid-configuration), the
#: fields documented at https://developers.google.com/identity/openid-connect/openid-connect#discovery.
GOOGLE_DISCOVERY = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
    "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
    "response_types_supported": [
        "code",
        "token",
        "id_token",
        "code token",
        "code id_token",
        "token id_token",
        "code token id_token",
        "none",
    ],  # fmt: skip
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "scopes_supported": ["openid", "email", "profile"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "claims_supported": [
        "aud",
        "email",
        "email_verified",
        "exp",
        "family_name",
        "given_name",
        "iat",
        "iss",
        "name",
        "picture",
        "sub",
    ],  # fmt: skip
    "code_challenge_methods_supported": ["plain", "S256"],
    "grant_types_supported": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],  # fmt: skip
}


def test_sign_in_uses_what_google_s_discovery_document_says() -> None:
    metadata = OpenIDProviderMetadata(GOOGLE_DISCOVERY)
    metadata.validate()
    assert metadata["authorization_endpoint"] == WebDefaults.GOOGLE_AUTHORIZE_URL
    assert metadata["token_endpoint"] == WebDefaults.GOOGLE_TOKEN_URL
    assert metadata["issuer"] in WebDefaults.GOOGLE_ISSUERS.split()
    # The PEM form of the same keys (google-auth reads it); Google publishes both under oauth2/.
    for certs in (WebDefaults.GOOGLE_CERTS_URL, Defaults.ADDON_CERTS_URL, Defaults.PUSH_CERTS_URL):
        assert certs == metadata["jwks_uri"].replace("/v3/", "/v1/")
    assert set(SIGN_IN_SCOPE.split()) <= set(metadata["scopes_supported"])
    assert "code" in metadata["response_types_supported"]
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert "client_secret_post" in metadata["token_endpoint_auth_methods_supported"]
    # The claims read (server/faces/web/google.py); nonce and hd are on the ID token page.
    assert {"iss", "aud", "exp", "email", "email_verified", "name", "sub"} <= set(
        metadata["claims_supported"]
    )


def test_the_discovery_check_can_fail() -> None:
    broken = GOOGLE_DISCOVERY | {"issuer": "http://accounts.google.com"}
    with pytest.raises(ValueError):
        OpenIDProviderMetadata(broken).validate()
