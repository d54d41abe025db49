"""Secrets at rest: values the product must use but nobody may read back.

An alert channel's Slack or webhook URL is itself a credential (whoever has it may post),
and a webhook's signing key is one too. They are stored sealed with Fernet (AES-128-CBC
and HMAC-SHA256, from ``cryptography``) when ``SECRETS_KEY`` is set, as
``fernet:<token>``; without it they are stored as given (the README says so). Either
way they are shown only redacted (``redact``) with a fingerprint, to everyone, admins
included: the stored value is only ever opened to send a message.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlparse

from core.errors import InvalidInput

PREFIX = "fernet:"


class SecretBox:
    """Seals and opens stored secrets with the key from ``SECRETS_KEY`` (if any)."""

    def __init__(self, key: str = ""):
        self._fernet = None
        if key:
            from cryptography.fernet import Fernet

            try:
                self._fernet = Fernet(key.encode())
            except ValueError:
                raise InvalidInput(
                    "SECRETS_KEY is not a Fernet key. To fix this, set it to the output of "
                    "python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())' (and keep it: what it sealed "
                    "cannot be read without it).") from None

    @property
    def sealing(self) -> bool:
        """Whether new values are stored encrypted."""
        return self._fernet is not None

    def seal(self, value: str) -> str:
        """What to store for ``value``."""
        if self._fernet is None:
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        """The value a stored secret holds.

        Raises:
            InvalidInput: it is sealed and this process has no key, or another key.
        """
        if not stored.startswith(PREFIX):
            return stored  # stored before SECRETS_KEY was set
        if self._fernet is None:
            raise InvalidInput("this secret is stored encrypted and SECRETS_KEY is not set "
                               "here. To fix this, give this process the SECRETS_KEY the "
                               "others use.")
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise InvalidInput("this secret was encrypted with another SECRETS_KEY. To fix "
                               "this, set the key it was stored with, or add the channel "
                               "again.") from None


def fingerprint(value: str) -> str:
    """A short, stable SHA-256 fingerprint: tells two secrets apart, reveals neither."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def redact(target: str) -> str:
    """What may be shown of a URL or e-mail address: its scheme and host (or first
    letter and domain) and its last 4 characters."""
    if "://" in target:
        parsed = urlparse(target)
        return f"{parsed.scheme}://{parsed.hostname or ''}/…{target[-4:]}"
    local, _, domain = target.partition("@")
    return f"{local[:1]}…@{domain}" if domain else f"…{target[-4:]}"
