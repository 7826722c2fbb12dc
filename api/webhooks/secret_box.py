"""The subscriptions' signing secrets at rest: HMAC needs each in clear when it signs, so it
is stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``) with the key
of ``GRIDLINK_WEBHOOK_SECRET_KEY``, never in clear, never logged.

The setting may hold several keys, comma-separated (:class:`~cryptography.fernet.MultiFernet`):
the first encrypts, every one decrypts — add a new key in front, restart, and the old one can
go once :meth:`SecretBox.rotate` has re-encrypted what it encrypted.

``python -m api.webhooks.secret_box`` prints a new key.
"""

from __future__ import annotations

import base64
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.errors import ConfigurationError
from services.webhook_settings import WebhookSettings

log = logging.getLogger("gridlink.api.webhooks")

#: Development only (GRIDLINK_WEBHOOK_DEV_KEY): a key anyone can derive from this source.
_DEV_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"gridlink development only").digest())


class SecretBox:
    """Encrypts and decrypts signing secrets with the configured key(s)."""

    def __init__(self, keys: list[bytes]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigurationError(
                "GRIDLINK_WEBHOOK_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded "
                "bytes; `python -m api.webhooks.secret_box` prints one)") from None

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> SecretBox:
        """The box of ``GRIDLINK_WEBHOOK_SECRET_KEY``; ConfigurationError without one,
        unless the development key is allowed out loud."""
        if settings.webhook_secret_key is not None:
            text = settings.webhook_secret_key.get_secret_value()
            return cls([key.strip().encode() for key in text.split(",") if key.strip()])
        if not settings.webhook_dev_key:
            raise ConfigurationError(
                "GRIDLINK_WEBHOOK_SECRET_KEY is not set: webhook signing secrets are stored "
                "encrypted with it (`python -m api.webhooks.secret_box` prints a key; "
                "GRIDLINK_WEBHOOK_DEV_KEY=true uses an insecure development key)")
        log.warning("webhook secrets are encrypted with the DEVELOPMENT key "
                    "(GRIDLINK_WEBHOOK_DEV_KEY): anyone can decrypt them; set "
                    "GRIDLINK_WEBHOOK_SECRET_KEY in production")
        return cls([_DEV_KEY])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The clear secret; ConfigurationError if no configured key opens it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigurationError("a webhook secret was encrypted with a key that "
                                     "GRIDLINK_WEBHOOK_SECRET_KEY no longer holds") from None

    def rotate(self, sealed: str) -> str:
        """``sealed`` encrypted again with the first key."""
        return self._fernet.rotate(sealed.encode()).decode()


def new_key() -> str:
    return Fernet.generate_key().decode()


if __name__ == "__main__":
    print(new_key())
