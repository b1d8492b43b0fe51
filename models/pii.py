"""Personal data: encrypted at rest, masked when shown."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

_cipher: MultiFernet | None = None


def _fernet(secret: str) -> Fernet:
    """Derives a Fernet key from a configured secret of any length."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def configure(secret: str, old_secrets: tuple[str, ...] = ()) -> None:
    """Sets the key; older keys still decrypt so keys can be rotated."""
    global _cipher
    _cipher = MultiFernet([_fernet(secret), *(_fernet(s) for s in old_secrets)])


def _require() -> MultiFernet:
    """Returns the cipher or refuses to touch personal data without a key."""
    if _cipher is None:
        raise RuntimeError("personal-data key not configured (models.pii.configure)")
    return _cipher


class EncryptedText(TypeDecorator):
    """A text column stored encrypted; the application sees plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Encrypts before writing."""
        if value is None:
            return None
        return _require().encrypt(value.encode()).decode()

    def process_result_value(self, value, dialect):
        """Decrypts after reading."""
        if value is None:
            return None
        try:
            return _require().decrypt(value.encode()).decode()
        except InvalidToken:
            raise RuntimeError("personal data cannot be decrypted with the configured key") from None


def mask_name(name: str | None) -> str:
    """张小芳 → 张*芳, 张芳 → 张*, so a name is recognisable but not readable."""
    if not name:
        return ""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_mobile(mobile: str | None) -> str:
    """13812345678 → 138****5678."""
    if not mobile:
        return ""
    if len(mobile) < 7:
        return "*" * len(mobile)
    return mobile[:3] + "*" * (len(mobile) - 7) + mobile[-4:]


def mask_id_number(number: str | None) -> str:
    """Keeps the first and last characters of an ID number only."""
    if not number:
        return ""
    return number[0] + "*" * (len(number) - 2) + number[-1] if len(number) > 2 else "**"
