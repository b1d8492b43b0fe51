"""Signed links to a request's page, so a reference number alone cannot open it."""
from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from .context import Services

SALT = "request-page"
RESIDENT = "r"


def _serializer(secret: str) -> URLSafeSerializer:
    """The signer for page links, keyed by the app's secret."""
    return URLSafeSerializer(secret, salt=SALT)


def page_token(secret: str, ref: str, viewer: str) -> str:
    """A token naming the request and who opens it: 'r' (its resident) or a staff openid."""
    return _serializer(secret).dumps([ref, viewer])


def read_token(secret: str, ref: str, token: str) -> str | None:
    """The viewer a token was issued to, or None if it is forged or for another request."""
    try:
        signed_ref, viewer = _serializer(secret).loads(token or "")
    except (BadSignature, ValueError, TypeError):
        return None
    return viewer if signed_ref == ref else None


def page_url(services: Services, ref: str, viewer: str = RESIDENT) -> str:
    """The full URL of a request's page for a viewer (the resident by default)."""
    token = page_token(services.settings["app"]["secret_key"], ref, viewer)
    return f"{services.public_url}/m/requests/{ref}?t={token}"
