"""The semantic cache's store on a Redis server, shared by several server replicas.

Same interface as :class:`cascade_router.stages.cache.SQLiteCacheStore`. Layout (all keys under
the prefix ``cr:``): a hash per entry ``cr:e:{id}`` (``key``, ``qnorm``, ``vector`` as float32
bytes, ``entry`` JSON, ``created``, ``used``), a hash ``cr:x:{cache key}`` from normalised
question to entry id (exact matches), a set ``cr:k:{cache key}`` of the entry ids under a cache
key, and a sorted set ``cr:used`` of entry ids by last use (for the ``max_entries`` bound).
Entries expire with Redis's own TTL. The nearest question is found by an exact cosine search
(numpy) over the entries of one cache key: a key is one task, passage and cascade, so its
entries are few; a replica keeps no vectors of its own.

Needs the ``redis`` package (``pip install 'cascade-router[redis]'``) and a Redis server the
user runs (``redis-server``; any Redis >= 6).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .cache import CacheError

PREFIX = "cr:"


class RedisCacheStore:
    """Cache entries on a Redis server (see the module docstring).

    Args:
        url: ``redis://HOST:PORT/DB``.
        ttl_s: entry lifetime in seconds (None: forever).
        max_entries: entries kept; beyond it the least recently used go.

    Raises:
        CacheError: the ``redis`` package is missing or the server does not answer (naming the URL).
    """

    def __init__(self, url: str, ttl_s: float | None = None, max_entries: int = 100_000) -> None:
        try:
            import redis
        except ImportError:
            raise CacheError("a Redis cache needs the redis package: pip install 'cascade-router[redis]'") from None
        self.url = url
        self.ttl_s = ttl_s
        self.max_entries = int(max_entries)
        try:
            self._r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
            self._r.ping()
        except (redis.RedisError, ValueError) as e:
            raise CacheError(f"cannot use the Redis cache at {url}: {e}") from None
        self._errors = redis.RedisError

    def _ttl_ms(self) -> int | None:
        return None if self.ttl_s is None else max(1, int(self.ttl_s * 1000))

    def _load(self, rid: bytes | str) -> tuple[dict, float, np.ndarray] | None:
        h = self._r.hgetall(f"{PREFIX}e:{int(rid)}")
        if not h:
            return None
        return json.loads(h[b"entry"]), float(h[b"created"]), np.frombuffer(h[b"vector"], dtype=np.float32)

    def _touch(self, rid: int, now: float) -> None:
        p = self._r.pipeline()
        p.hset(f"{PREFIX}e:{rid}", "used", now)
        p.zadd(f"{PREFIX}used", {str(rid): now})
        p.execute()

    def exact(self, key: str, qnorm: str, now: float) -> tuple[dict, float] | None:
        rid = self._r.hget(f"{PREFIX}x:{key}", qnorm)
        if rid is None:
            return None
        got = self._load(rid)
        if got is None:  # expired
            self._r.hdel(f"{PREFIX}x:{key}", qnorm)
            return None
        self._touch(int(rid), now)
        return got[0], got[1]

    def nearest(self, key: str, vec: np.ndarray, now: float, min_sim: float = -1.0) -> tuple[dict, float, float] | None:
        best = None
        for rid in self._r.smembers(f"{PREFIX}k:{key}"):
            got = self._load(rid)
            if got is None:
                self._r.srem(f"{PREFIX}k:{key}", rid)
                continue
            entry, created, v = got
            if v.shape != vec.shape:
                continue
            sim = float(v @ np.asarray(vec, np.float32))
            if best is None or sim > best[2]:
                best = (entry, created, sim, int(rid))
        if best is None or best[2] < min_sim:
            return None
        self._touch(best[3], now)
        return best[0], best[1], best[2]

    def add(self, key: str, qnorm: str, vec: np.ndarray | None, entry: dict, now: float) -> None:
        old = self._r.hget(f"{PREFIX}x:{key}", qnorm)
        if old is not None:
            self._delete(int(old))
        rid = int(self._r.incr(f"{PREFIX}next"))
        p = self._r.pipeline()
        e = f"{PREFIX}e:{rid}"
        p.hset(e, mapping={"key": key, "qnorm": qnorm,
                           "vector": b"" if vec is None else np.asarray(vec, np.float32).tobytes(),
                           "entry": json.dumps(entry), "created": now, "used": now})
        if self._ttl_ms() is not None:
            p.pexpire(e, self._ttl_ms())
        p.hset(f"{PREFIX}x:{key}", qnorm, rid)
        if vec is not None:  # a question too long to embed whole matches exactly only
            p.sadd(f"{PREFIX}k:{key}", rid)
        p.zadd(f"{PREFIX}used", {str(rid): now})
        p.execute()
        extra = self._r.zcard(f"{PREFIX}used") - self.max_entries
        if extra > 0:
            for old_id in self._r.zrange(f"{PREFIX}used", 0, extra - 1):
                self._delete(int(old_id))

    def _delete(self, rid: int) -> None:
        h: dict[bytes, Any] = self._r.hgetall(f"{PREFIX}e:{rid}")
        p = self._r.pipeline()
        if h:
            key, qnorm = h[b"key"].decode(), h[b"qnorm"].decode()
            p.hdel(f"{PREFIX}x:{key}", qnorm)
            p.srem(f"{PREFIX}k:{key}", rid)
        p.delete(f"{PREFIX}e:{rid}")
        p.zrem(f"{PREFIX}used", str(rid))
        p.execute()

    def size(self) -> int:
        return int(self._r.zcard(f"{PREFIX}used"))

    def close(self) -> None:
        self._r.close()
