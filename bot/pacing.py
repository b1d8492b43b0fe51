"""The outbox's send rate: evenly spaced slots, shared by threads, and by processes through Redis.

A slot is reserved before each send (GCRA: the next slot is one interval after the last one
handed out, or now when the line is idle), so sends are spaced 1/(rate - 1) apart however
many threads send: no second holds more than `rate` of them even when each leaves up to
about 1/rate seconds after its slot. With Redis configured
the next-slot time lives there, so every dispatcher of the account shares one rate; while
Redis cannot be reached the process keeps its own.
"""
from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 30

# KEYS[1]: the next free slot, µs since the epoch by Redis' clock. ARGV[1]: the interval in µs.
# Returns how long the caller waits for its slot, in µs.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1000)
return slot - now
"""


class Pacer:
    """Hands out send slots `1 / rate` seconds apart."""

    def __init__(self, rate: float, redis_url: str = "", name: str = ""):
        """Remembers the rate; the Redis client is built on first use."""
        # One slot a second of headroom: a send that leaves a few milliseconds after its slot
        # (a thread woken late) then never lands as one too many in a second.
        self.interval = 1.0 / (rate - 1 if rate > 2 else rate)
        self.redis_url = redis_url
        self.key = f"redsteward:outbox:next-slot:{name}"
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Takes the next slot; returns the seconds to wait before sending in it."""
        if self.redis_url and time.monotonic() >= self._redis_down_until:
            wait = self._reserve_shared()
            if wait is not None:
                return wait
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def _reserve_shared(self) -> float | None:
        """The slot from Redis; None (and one log line) when Redis cannot be reached."""
        import redis
        try:
            if self._script is None:
                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=0.25,
                                                   socket_connect_timeout=0.25)
                self._script = self._redis.register_script(_RESERVE)
            return int(self._script(keys=[self.key], args=[round(self.interval * 1e6)])) / 1e6
        except redis.RedisError as exc:
            # The process's own pacing still holds the rate for this dispatcher.
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("outbox rate: Redis unreachable (%s); pacing in this process for %ss",
                           type(exc).__name__, REDIS_RETRY_SECONDS)
            return None


# One pacer per rate, Redis and account in a process, so consecutive batches keep the spacing.
_pacers: dict[tuple, Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(settings: dict) -> Pacer | None:
    """The pacer for these settings; None when the outbox has no rate limit."""
    rate = settings["scheduler"]["outbox_rate_per_second"]
    if not rate:
        return None
    key = (rate, settings["redis"]["url"], settings["wechat"]["appid"])
    with _pacers_lock:
        if key not in _pacers:
            _pacers[key] = Pacer(rate, settings["redis"]["url"], settings["wechat"]["appid"])
        return _pacers[key]
