"""WeChat web authorisation (snsapi_base, silent): who is reading a page in WeChat's browser.

The reader is sent to `wechat.oauth_base_url` (WeChat's open.weixin.qq.com, or the sandbox's
stand-in), WeChat sends them back with `?code=&state=`, and the code is swapped for the openid
under `wechat.api_base_url`. The state lives in the reader's session and must come back
unchanged, so nobody can make a victim's browser finish a flow someone else started.
"""
from __future__ import annotations

import hmac
import logging
import secrets

import requests
from flask import current_app, redirect, request, session, url_for
from wechatpy.exceptions import WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

logger = logging.getLogger(__name__)


class OAuthRefused(Exception):
    """The state does not match, or WeChat refused the code: the flow opens nothing."""


class OAuthUnavailable(Exception):
    """WeChat could not be asked (network, HTTP error, not JSON): try again later."""


class OAuthClient(WeChatOAuth):
    """wechatpy's OAuth client under the configured hosts, with the API timeout on every call."""

    def __init__(self, wx: dict, redirect_uri: str = "", state: str = ""):
        """Builds the client from the `[wechat]` settings."""
        super().__init__(wx["appid"], wx["appsecret"], redirect_uri, scope="snsapi_base", state=state)
        self.API_BASE_URL = wx["api_base_url"]
        self.OAUTH_BASE_URL = wx["oauth_base_url"]
        self.timeout = wx["timeout_seconds"]

    def _request(self, method, url_or_endpoint, **kwargs):
        """wechatpy's call with a timeout (it sets none of its own)."""
        kwargs.setdefault("timeout", self.timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


def start(key: str, return_endpoint: str, **pending) -> object:
    """Remembers a fresh state (and `pending`) in the session under `key` and redirects to WeChat."""
    wx = current_app.config["REDSTEWARD"]["wechat"]
    state = secrets.token_urlsafe(16)
    session[key] = {"state": state, **pending}
    public_url = current_app.extensions["redsteward.services"].public_url
    return redirect(OAuthClient(wx, public_url + url_for(return_endpoint), state).authorize_url)


def finish(key: str) -> tuple[dict, str]:
    """On WeChat's redirect back: what `start` remembered and the reader's openid.

    Raises OAuthRefused for a missing or wrong state or a refused code, OAuthUnavailable when
    WeChat cannot be asked. The state is used once either way.
    """
    pending = session.pop(key, None)
    code = request.args.get("code", "")
    state = request.args.get("state", "")
    if not pending or not code or not hmac.compare_digest(state.encode(), pending["state"].encode()):
        raise OAuthRefused("state")
    wx = current_app.config["REDSTEWARD"]["wechat"]
    try:
        answer = OAuthClient(wx).fetch_access_token(code)
    except WeChatOAuthException as exc:
        if exc.errcode is None:
            logger.warning("oauth code exchange failed: HTTP error")
            raise OAuthUnavailable("http") from None
        logger.warning("oauth code refused: %s", exc.errcode)
        raise OAuthRefused("code") from None
    except (requests.RequestException, ValueError) as exc:
        logger.warning("oauth code exchange failed: %s", type(exc).__name__)
        raise OAuthUnavailable(type(exc).__name__) from None
    except KeyError:
        logger.warning("oauth answer without openid")
        raise OAuthRefused("answer") from None
    return pending, answer["openid"]
