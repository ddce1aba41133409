"""A mailbox's Google credentials: none (the sandbox), a delegated service account, or OAuth; and
Google refusing them."""

from __future__ import annotations

from typing import Any

from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import RefreshError

from server.gmail.errors import GmailCredentialsError

#: Read, label and send: everything Postdesk does in a shared mailbox, and no more.
SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)


def mailbox_credentials(mailbox: Any) -> Credentials:
    """The credentials of a stored :class:`~server.base.models.Mailbox`, decrypted."""
    from server.base.crypto import SecretError, decrypt_json

    secret = None
    if mailbox.credentials_encrypted:
        try:
            secret = decrypt_json(mailbox.credentials_encrypted)
        except SecretError as exc:
            raise GmailCredentialsError(f"mailbox {mailbox.address}: {exc}") from exc
    return credentials_for(mailbox.auth_kind, secret, mailbox.address)


def refused(method: str, error: RefreshError) -> GmailCredentialsError:
    """Google refused to refresh the credentials (revoked, delegation taken back): not worth a retry."""
    reason = error.args[0] if error.args and isinstance(error.args[0], str) else type(error).__name__
    return GmailCredentialsError(f"{method}: Google refused the mailbox's credentials: {reason[:200]}")


def credentials_for(auth_kind: str, secret: dict[str, Any] | None, address: str) -> Credentials:
    """Google credentials for a mailbox: anonymous (sandbox), delegated service account, or OAuth."""
    if auth_kind == "sandbox":
        return AnonymousCredentials()
    if not secret:
        raise GmailCredentialsError(f"mailbox {address} has no stored credentials")
    try:
        if auth_kind == "service_account":
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(secret, scopes=SCOPES)
            delegated: Credentials = creds.with_subject(address)
            return delegated
        if auth_kind == "oauth":
            from google.oauth2.credentials import Credentials as UserCredentials

            return UserCredentials(
                None,
                refresh_token=secret["refresh_token"],
                token_uri=secret.get("token_uri", "https://oauth2.googleapis.com/token"),
                client_id=secret["client_id"],
                client_secret=secret["client_secret"],
                scopes=list(SCOPES),
            )
    except (KeyError, ValueError) as exc:
        raise GmailCredentialsError(
            f"mailbox {address}: stored {auth_kind} credentials are incomplete"
        ) from exc
    raise GmailCredentialsError(f"mailbox {address}: unknown auth kind {auth_kind!r}")
