"""The per-resident rate limit: a fixed one-minute window, in Redis when configured."""
from __future__ import annotations

import hashlib
import logging
import threading
import time

logger = logging.getLogger(__name__)

# Events that change state WeChat will not resend: never refused.
EXEMPT_EVENTS = {"subscribe", "unsubscribe", "templatesendjobfinish", "scan", "subscribe_scan"}
REDIS_RETRY_SECONDS = 30


class Limiter:
    """Counts messages per resident and minute; Redis shares the count across workers and hosts."""

    def __init__(self, per_minute: int, redis_url: str = ""):
        """Remembers the limit; the Redis client is built on first use."""
        self.per_minute = per_minute
        self.redis_url = redis_url
        self._redis = None
        self._redis_down_until = 0.0
        self._local: dict[tuple[str, int], int] = {}
        self._minute = 0
        self._lock = threading.Lock()

    def allow(self, openid: str, now: float | None = None) -> bool:
        """Counts one message; False once the resident went over the limit this minute."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        who = hashlib.sha256(openid.encode()).hexdigest()[:24]
        if self.redis_url and now >= self._redis_down_until:
            count = self._redis_count(who, minute, now)
            if count is not None:
                return count <= self.per_minute
        return self._local_count(who, minute) <= self.per_minute

    def _redis_count(self, who: str, minute: int, now: float) -> int | None:
        """INCR of this minute's key; None (and a log line) when Redis cannot be reached."""
        import redis
        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=0.25,
                                                   socket_connect_timeout=0.25)
            key = f"redsteward:rate:{who}:{minute}"
            pipe = self._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            return pipe.execute()[0]
        except redis.RedisError as exc:
            # Counting in this process is a safe fallback: the limit still holds per worker.
            self._redis_down_until = now + REDIS_RETRY_SECONDS
            logger.warning("rate limit: Redis unreachable (%s); counting in this process for %ss",
                           type(exc).__name__, REDIS_RETRY_SECONDS)
            return None

    def _local_count(self, who: str, minute: int) -> int:
        """The in-process count; last minute's counters are dropped when a new minute starts."""
        with self._lock:
            if minute != self._minute:
                self._local = {k: v for k, v in self._local.items() if k[1] >= minute}
                self._minute = minute
            key = (who, minute)
            self._local[key] = self._local.get(key, 0) + 1
            return self._local[key]


# One limiter per app (its settings mapping): apps built side by side never share counts.
_limiters: dict[int, tuple[dict, Limiter]] = {}


def exceeded(settings: dict, msg) -> bool:
    """True when this message goes over the resident's limit (0 turns the limit off)."""
    per_minute = settings["app"]["rate_limit_per_minute"]
    if not per_minute or (msg.type == "event" and (msg.event or "").lower() in EXEMPT_EVENTS):
        return False
    entry = _limiters.get(id(settings))
    if entry is None or entry[0] is not settings or entry[1].per_minute != per_minute:
        if len(_limiters) > 64:
            _limiters.clear()
        entry = _limiters[id(settings)] = (settings, Limiter(per_minute, settings["redis"]["url"]))
    return not entry[1].allow(msg.source)
