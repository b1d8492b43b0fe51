"""Personal data: encrypted at rest, masked when shown."""
from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import MetaData, Table, Text, select, type_coerce, update
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator

_cipher: MultiFernet | None = None
_keys: list[Fernet] = []  # the current key first, then the previous ones in the order configured


class PersonalDataKeyError(RuntimeError):
    """A stored value that none of the configured keys decrypts."""


def _fernet(secret: str) -> Fernet:
    """Derives a Fernet key from a configured secret of any length."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def configure(secret: str, old_secrets: tuple[str, ...] | list[str] = ()) -> None:
    """Sets the key that encrypts; it and the previous keys decrypt, so keys can be rotated."""
    global _cipher, _keys
    _keys = [_fernet(secret), *(_fernet(s) for s in old_secrets)]
    _cipher = MultiFernet(_keys)


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
            raise PersonalDataKeyError(UNREADABLE) from None


UNREADABLE = ("personal data cannot be decrypted with app.pii_key or any of app.pii_previous_keys "
              "(written under a key that is no longer configured, or altered)")


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


# Key rotation: every stored value re-encrypted under the current key, batch by batch.

def encrypted_columns(metadata: MetaData) -> Iterator[tuple[Table, str]]:
    """Every (table, column name) stored with EncryptedText, in a stable order."""
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                yield table, column.name


def key_index(token: str) -> int | None:
    """Which configured key a stored value is under: 0 the current one, 1… the previous; None: none."""
    _require()
    raw = token.encode()
    for n, key in enumerate(_keys):
        try:
            key.decrypt(raw)
            return n
        except InvalidToken:
            continue
    return None


@dataclass
class Census:
    """How many stored values are under which key, per table.column, and where the unreadable ones are."""

    by_key: Counter = field(default_factory=Counter)  # (column, key index or None) → values
    rewritten: Counter = field(default_factory=Counter)  # column → values re-encrypted
    unreadable: list[str] = field(default_factory=list)  # "table.column id=…", the first few

    def count(self, index: int | None) -> int:
        """Values under key `index` (0 current, None unreadable), over every column."""
        return sum(n for (_, k), n in self.by_key.items() if k == index)


def _scan(sessions: sessionmaker, metadata: MetaData, batch_size: int, rewrite: bool,
          progress: Callable[[str, int], None] | None) -> Census:
    """Walks every encrypted value in primary-key order, one transaction per batch."""
    census = Census()
    for table, name in encrypted_columns(metadata):
        column = f"{table.name}.{name}"
        [pk] = table.primary_key.columns  # every table holding personal data has a single-column key
        raw = type_coerce(table.c[name], Text)  # the stored token, not decrypted
        last = None
        while True:
            query = select(pk, raw).where(table.c[name].is_not(None)).order_by(pk).limit(batch_size)
            if last is not None:
                query = query.where(pk > last)
            with sessions() as s, s.begin():
                rows = s.execute(query).all()
                for ident, token in rows:
                    index = key_index(token)
                    census.by_key[(column, index)] += 1
                    if index is None:
                        if len(census.unreadable) < 20:
                            census.unreadable.append(f"{column} {pk.name}={ident}")
                    elif index and rewrite:
                        # Compare-and-set: a value the app rewrote meanwhile is already under the current key.
                        fresh = _require().rotate(token.encode()).decode()
                        done = s.execute(update(table).where(pk == ident, raw == token)
                                         .values({name: type_coerce(fresh, Text)}))
                        census.rewritten[column] += done.rowcount
            if progress and rows:
                progress(column, len(rows))
            if len(rows) < batch_size:
                break
            last = rows[-1][0]
    return census


def census(sessions: sessionmaker, metadata: MetaData, batch_size: int = 1000,
           progress: Callable[[str, int], None] | None = None) -> Census:
    """Counts the stored values per key without changing anything."""
    return _scan(sessions, metadata, batch_size, rewrite=False, progress=progress)


def rotate(sessions: sessionmaker, metadata: MetaData, batch_size: int = 500,
           progress: Callable[[str, int], None] | None = None) -> Census:
    """Re-encrypts every value under a previous key with the current key; safe to repeat or resume."""
    return _scan(sessions, metadata, batch_size, rewrite=True, progress=progress)
