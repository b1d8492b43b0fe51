"""The WeChat API client: wechatpy's WeChatClient, one token shared by every process."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from models import AccessToken, utcnow

logger = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
EARLY_REFRESH = timedelta(seconds=300)
# How long a client reuses the shared token before reading the store again. A token another
# process replaced still works for minutes, and a rejected one is refreshed at once.
TOKEN_REUSE_SECONDS = 30


class TokenStore:
    """The shared access token in the database; the row lock makes refresh single-flight."""

    def __init__(self, sessions: sessionmaker, appid: str):
        self.sessions = sessions
        self.appid = appid

    def get(self) -> str | None:
        """The current token, unless it is about to expire."""
        with self.sessions() as s:
            row = s.get(AccessToken, self.appid)
            if row and row.expires_at - EARLY_REFRESH > utcnow():
                return row.token
        return None

    def _ensure_row(self) -> None:
        """Creates the (expired) token row once, so the first fetchers have a row to lock and queue on."""
        with self.sessions() as s, s.begin():
            if s.get(AccessToken, self.appid) is None:
                try:
                    with s.begin_nested():
                        s.add(AccessToken(appid=self.appid, token="", expires_at=datetime.fromtimestamp(0, UTC)))
                except IntegrityError:
                    pass  # another process created it first

    @contextmanager
    def refreshing(self, stale: str | None):
        """Yields None if another process already refreshed, else a setter; holds the lock."""
        self._ensure_row()
        with self.sessions() as s, s.begin():
            row = s.scalar(select(AccessToken).where(AccessToken.appid == self.appid).with_for_update())
            if row and row.token != stale and row.expires_at - EARLY_REFRESH > utcnow():
                yield None, row.token
                return
            box = {}
            yield box, None
            if "token" in box:
                expires = utcnow() + timedelta(seconds=box["expires_in"])
                if row is None:
                    s.add(AccessToken(appid=self.appid, token=box["token"], expires_at=expires))
                else:
                    row.token, row.expires_at = box["token"], expires


class RedisTokenStore:
    """The shared access token in Redis, refreshed under a Redis lock."""

    def __init__(self, client, appid: str):
        self.r = client
        self.key = f"redsteward:token:{appid}"

    def get(self) -> str | None:
        """The current token, if Redis has one."""
        value = self.r.get(self.key)
        return value.decode() if value else None

    @contextmanager
    def refreshing(self, stale: str | None):
        """Yields (setter, None) under the lock, or (None, token) if someone else refreshed."""
        with self.r.lock(self.key + ":lock", timeout=15, blocking_timeout=15):
            current = self.get()
            if current and current != stale:
                yield None, current
                return
            box = {}
            yield box, None
            if "token" in box:
                ttl = max(60, int(box["expires_in"] - EARLY_REFRESH.total_seconds()))
                self.r.set(self.key, box["token"], ex=ttl)


class ApiClient(WeChatClient):
    """WeChatClient under `wechat.api_base_url`, with a shared token and bounded retries."""

    def __init__(self, settings: dict, store, http: requests.Session | None = None):
        wx = settings["wechat"]
        super().__init__(wx["appid"], wx["appsecret"], timeout=wx["timeout_seconds"], auto_retry=False)
        self.base = wx["api_base_url"]
        self.API_BASE_URL = self.base + "cgi-bin/"
        self.use_stable = wx["use_stable_token"]
        self.store = store
        self._reuse: tuple[str, float] | None = None
        self._reuse_lock = threading.Lock()
        if http is not None:
            self._http = http
        # Keep-alive connections for every outbox thread, not urllib3's default of ten.
        pool = max(10, settings["scheduler"]["outbox_threads"])
        self._http.mount(self.base, requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool))

    @property
    def access_token(self) -> str:
        """The shared token (reused for a few seconds), fetched once for all processes when missing."""
        reuse = self._reuse
        if reuse and reuse[1] > time.monotonic():
            return reuse[0]
        return self._remember(self.store.get() or self._refresh(stale=None))

    def _remember(self, token: str) -> str:
        """Keeps the token for TOKEN_REUSE_SECONDS in this client; returns it."""
        with self._reuse_lock:
            self._reuse = (token, time.monotonic() + TOKEN_REUSE_SECONDS)
        return token

    def _refresh(self, stale: str | None) -> str:
        """Fetches a new token unless another process already did (re-checked under the lock)."""
        with self._reuse_lock:
            self._reuse = None
        with self.store.refreshing(stale) as (box, fresh):
            if box is None:
                return self._remember(fresh)
            if self.use_stable:
                res = self._http.post(self.API_BASE_URL + "stable_token", timeout=self.timeout,
                                      json={"grant_type": "client_credential", "appid": self.appid,
                                            "secret": self.secret, "force_refresh": stale is not None})
            else:
                res = self._http.get(self.API_BASE_URL + "token", timeout=self.timeout,
                                     params={"grant_type": "client_credential", "appid": self.appid,
                                             "secret": self.secret})
            res.raise_for_status()
            data = res.json()
            if data.get("errcode"):
                raise WeChatClientException(data["errcode"], data.get("errmsg"), client=self)
            box["token"], box["expires_in"] = data["access_token"], int(data.get("expires_in", 7200))
            logger.info("access token refreshed (expires in %ss)", box["expires_in"])
        return self._remember(data["access_token"])

    def fetch_access_token(self):
        """wechatpy's hook, pointed at our shared refresh."""
        return {"access_token": self._refresh(stale=self.store.get())}

    def _request(self, method, url_or_endpoint, **kwargs):
        """One call; on an invalid-token error, refresh that token once and retry once."""
        token = self.access_token
        params = dict(kwargs.pop("params", None) or {})
        params["access_token"] = token
        try:
            return super()._request(method, url_or_endpoint, params=params, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            logger.warning("token rejected (%s); refreshing once", exc.errcode)
            params["access_token"] = self._refresh(stale=token)
            return super()._request(method, url_or_endpoint, params=params, **kwargs)


def build_client(settings: dict, sessions: sessionmaker) -> ApiClient:
    """The client with the token store the settings ask for (Redis when configured)."""
    appid = settings["wechat"]["appid"]
    if settings["redis"]["url"]:
        import redis
        store = RedisTokenStore(redis.Redis.from_url(settings["redis"]["url"], socket_timeout=2), appid)
    else:
        store = TokenStore(sessions, appid)
    return ApiClient(settings, store)
