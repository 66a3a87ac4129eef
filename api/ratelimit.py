"""Per-tenant token buckets: a tenant over its rate gets 429 with ``Retry-After``.

The buckets live in each API process, so with several replicas a tenant's effective limit is
the per-process rate times the replicas behind the load balancer.
"""

from __future__ import annotations

import math
import threading
import time


class TokenBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, *, rate: float, burst: int) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is free."""
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - stamp) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after(wait_s: float) -> int:
    return max(1, math.ceil(wait_s))
