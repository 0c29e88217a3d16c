"""What an expiry warning says: the e-mail and the webhook body, built from one record.

Nothing here can carry a secret: a stored token has only its hash, and
``ExpiryWarning`` holds none of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from ..store import TokenRecord

EVENT = "token.expiring"


@dataclass(frozen=True)
class ExpiryWarning:
    token_id: int
    description: str
    owner_key: str
    owner_name: str
    valid_until: int
    days: int

    @classmethod
    def of(cls, record: TokenRecord, days: int) -> ExpiryWarning:
        assert record.valid_until is not None
        return cls(
            record.id,
            record.description,
            record.owner_key,
            record.owner_name,
            record.valid_until,
            days,
        )

    @property
    def expires(self) -> str:
        return datetime.fromtimestamp(self.valid_until / 1000, tz=UTC).strftime(
            "%Y-%m-%d %H:%M UTC"
        )


def email(warning: ExpiryWarning, sender: str, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = (
        f'Your API token "{_one_line(warning.description)}" expires on {warning.expires}'
    )
    message.set_content(
        f"Hello {warning.owner_name},\n\n"
        f'your API token "{warning.description}" (id {warning.token_id}) expires on '
        f"{warning.expires}, in {warning.days} day{'s' if warning.days != 1 else ''} "
        "or less.\n\n"
        "Scripts and integrations that use it will stop working then. Create a new "
        "token (POST /rest/de.resolution.apitokenauth/latest/user/token) and put it "
        "in their place before that day.\n"
    )
    return message


def webhook_body(warning: ExpiryWarning) -> bytes:
    return json.dumps(
        {
            "event": EVENT,
            "tokenId": warning.token_id,
            "description": warning.description,
            "tokenForUserKey": warning.owner_key,
            "userName": warning.owner_name,
            "validUntil": warning.valid_until,
            "daysBefore": warning.days,
        },
        sort_keys=True,
    ).encode()


def _one_line(text: str) -> str:
    # A description may hold line breaks; a header must not.
    return " ".join(text.split())[:100]
