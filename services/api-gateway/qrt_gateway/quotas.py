"""Limits on submits: how fast each user, and each instance with a rate of its own, may submit
jobs (and make sessions, which count as submits), and how many of their jobs may be queued or
running at once. Every submit route goes through `Gateway.submit`, which asks `Quotas.admit`
before anything is stored; a submit beyond a limit raises LimitReached (HTTP 429 with
`Retry-After`, the body naming the limit).

What is shared and what is not, with several gateway replicas: the caps on queued and running
jobs are counted in the store, so they hold across every replica (a few submits arriving at the
same moment may all pass the same count). The rates are token buckets in each replica's memory:
behind N replicas a user may submit up to N times their rate, and a restarted replica starts
with full buckets.

A retry of an accepted submit (the same `Idempotency-Key`) is neither refused nor counted: it
makes no job. Every other submit takes a token, also one a cap then refuses, so a client
hammering a full cap is paced too and costs the store one count a token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from qrt_common.accounts import SINGLE_USER, Instance
from qrt_common.errors import LimitReached
from qrt_common.jobs import Job
from qrt_common.settings import Settings
from qrt_common.store.base import JobStore

CAP_RETRY_SECONDS = 10
"""`Retry-After` of a submit over a cap on queued and running jobs: when some will have ended
cannot be known, so clients look again this much later."""
MOST_BUCKETS = 10_000
"""Buckets a replica keeps before it forgets the full ones (those of callers gone quiet)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    """When `tokens` was counted (the clock's seconds)."""
    per_second: float
    capacity: int

    def refill(self, now: float) -> None:
        gained = (now - self.at) * self.per_second
        self.tokens, self.at = min(float(self.capacity), self.tokens + gained), now


class TokenBuckets:
    """Token buckets by name: each holds up to `capacity` tokens and regains `per_second` a
    second; a request takes one (RFC 6585's 429 is what callers get when none is left)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, name: str, per_second: float, capacity: int) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= MOST_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[name] = _Bucket(float(capacity), now, per_second, capacity)
        else:
            bucket.per_second, bucket.capacity = per_second, capacity  # the caps may change
            bucket.refill(now)
        return bucket

    def wait(self, name: str, per_second: float, capacity: int) -> float:
        """Seconds until bucket `name` holds a token (0: it holds one now)."""
        bucket = self._refilled(name, per_second, capacity)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / per_second

    def take(self, name: str, per_second: float, capacity: int) -> None:
        """Take a token from bucket `name` (after `wait` said one is there)."""
        self._refilled(name, per_second, capacity).tokens -= 1

    def _forget_full(self, now: float) -> None:
        # A bucket that is full again is the same as no bucket.
        for bucket in self._buckets.values():
            bucket.refill(now)
        self._buckets = {
            name: bucket
            for name, bucket in self._buckets.items()
            if bucket.tokens < bucket.capacity
        }


@dataclass(frozen=True, slots=True)
class _Rate:
    bucket: str
    per_minute: int
    burst: int
    limit: str
    """The limit's name in a 429 (`LimitReached.limit`)."""
    words: str
    """Whose rate, and which setting sets it, for people."""


class Quotas:
    """The submit limits of a gateway: QRT_USER_SUBMITS_PER_MINUTE, QRT_USER_SUBMIT_BURST and
    QRT_USER_MAX_ACTIVE_JOBS for each user, and each instance's own caps (`Instance`)."""

    def __init__(
        self, settings: Settings, store: JobStore, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.store = store
        self.buckets = TokenBuckets(clock)

    async def admit(self, job: Job) -> None:
        """Count `job`'s submit against its submitter's and instance's limits; raises
        LimitReached naming the first limit it is over (and takes nothing from the others)."""
        user = job.submitter if job.submitter is not None else SINGLE_USER.user
        instance = await self.store.get_instance(job.instance)
        self._take_submit(job.submitter, instance, "jobs")
        await self._check_caps(job, user, instance)

    async def admit_session(self, submitter: str | None, instance_name: str) -> None:
        """Count a new session against the same submit rates as a job (each is a record the
        store keeps, and a session may hold a device): raises LimitReached as `admit` does.
        `submitter` is None for the single user of a platform without accounts."""
        instance = await self.store.get_instance(instance_name)
        self._take_submit(submitter, instance, "jobs or sessions")

    def _take_submit(self, submitter: str | None, instance: Instance | None, what: str) -> None:
        settings = self.settings
        user = submitter if submitter is not None else SINGLE_USER.user
        rates: list[_Rate] = []
        if settings.user_submits_per_minute:
            rates.append(
                _Rate(
                    f"user {submitter or ''}",
                    settings.user_submits_per_minute,
                    settings.user_submit_burst,
                    "user_submit_rate",
                    f"user {user} may submit {settings.user_submits_per_minute} {what} a "
                    f"minute, {settings.user_submit_burst} at once (QRT_USER_SUBMITS_PER_MINUTE, "
                    "QRT_USER_SUBMIT_BURST)",
                )
            )
        if instance is not None and instance.submits_per_minute:
            per_minute = instance.submits_per_minute
            rates.append(
                _Rate(
                    f"instance {instance.name}",
                    per_minute,
                    per_minute,
                    "instance_submit_rate",
                    f"instance {instance.name} may submit {per_minute} {what} a minute (its "
                    "submits_per_minute)",
                )
            )
        for rate in rates:
            wait = self.buckets.wait(rate.bucket, rate.per_minute / 60, rate.burst)
            if wait > 0:
                raise LimitReached(
                    f"too many submits: {rate.words}; retry in {_seconds(wait)} s",
                    limit=rate.limit,
                    retry_after=_seconds(wait),
                )
        for rate in rates:
            self.buckets.take(rate.bucket, rate.per_minute / 60, rate.burst)

    async def _check_caps(self, job: Job, user: str, instance: Instance | None) -> None:
        cap = self.settings.user_max_active_jobs
        if cap and await self.store.active_jobs_of(job.submitter) >= cap:
            raise LimitReached(
                f"too many jobs: user {user} has {cap} queued or running jobs, the most "
                f"QRT_USER_MAX_ACTIVE_JOBS allows; submit again once some have ended",
                limit="user_active_jobs",
                retry_after=CAP_RETRY_SECONDS,
            )
        if instance is None or not instance.max_active_jobs:
            return
        cap = instance.max_active_jobs
        if await self.store.active_jobs_in(instance.name) >= cap:
            raise LimitReached(
                f"too many jobs: instance {instance.name} has {cap} queued or running jobs, "
                "the most its max_active_jobs allows; submit again once some have ended",
                limit="instance_active_jobs",
                retry_after=CAP_RETRY_SECONDS,
            )


def _seconds(wait: float) -> int:
    """`wait` as whole seconds for `Retry-After` (RFC 9110 §10.2.3), at least 1."""
    return max(1, math.ceil(wait))
