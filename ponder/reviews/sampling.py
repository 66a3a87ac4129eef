"""QA sampling: which ``succeeded`` jobs a person reviews so that production precision can be
estimated. Decided when the job ends, from a hash of its id: stable (a retried end decides
the same), unbiased (ids are random UUIDs) and testable without mocking randomness."""

from __future__ import annotations

import hashlib


def sample_point(job_id: str) -> float:
    """The job's point in [0, 1): the first 8 bytes of SHA-256 of its id."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") / 2**64


def is_sampled(job_id: str, rate: float) -> bool:
    """Whether the job is in a QA sample taken at ``rate`` (0: none, 1: every job)."""
    return rate > 0 and sample_point(job_id) < rate
