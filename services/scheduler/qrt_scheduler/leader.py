"""Leader election of scheduler replicas through a coordination.k8s.io Lease.

One replica holds the Lease and schedules; the others wait and take over once the holder stops
renewing it (its pod died) or gives it up (a clean shutdown). Client-go's rules: a Lease not renewed
for `leaseDurationSeconds` is free; every write carries the `resourceVersion` that was read, so of
two replicas racing for a free Lease the API server lets exactly one win.

The `kubernetes` client is synchronous: its calls run in a thread. (Its own LeaseLock exists only in
versions that require python-dateutil 3, which qiskit-ibm-runtime's dependencies forbid.)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """How long a Lease lasts unrenewed, and how often its holder and the others look at it."""

    duration: float = 15.0
    """Seconds after the last renewal at which the Lease is free for another replica."""
    renew_deadline: float = 10.0
    """Seconds the holder keeps trying to renew before it must stop leading."""
    retry_period: float = 2.0
    """Seconds between attempts to acquire or renew."""

    @classmethod
    def lasting(cls, duration: float) -> LeaseTerms:
        """Client-go's proportions (15 / 10 / 2) scaled to `duration`."""
        return cls(duration, duration * 2 / 3, max(0.1, duration * 2 / 15))


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        terms: LeaseTerms | None = None,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.terms = terms or LeaseTerms()
        self.is_leader = False

    async def acquire(self) -> None:
        """Return once this identity holds the Lease."""
        logger.info("waiting to lead", extra={"lease": self.name, "identity": self.identity})
        # Polling is the protocol: the Lease is an object on the API server, nothing to wait on.
        while not await self._try_acquire_or_renew():  # noqa: ASYNC110
            await asyncio.sleep(self.terms.retry_period)
        self.is_leader = True
        logger.info("leading", extra={"lease": self.name, "identity": self.identity})

    async def keep(self) -> None:
        """Renew the Lease until renewing fails for the renew deadline; then return (leadership
        is lost: the caller must stop leading at once)."""
        loop = asyncio.get_running_loop()
        last_renewed = loop.time()
        while True:
            await asyncio.sleep(self.terms.retry_period)
            if await self._try_acquire_or_renew():
                last_renewed = loop.time()
            elif loop.time() - last_renewed > self.terms.renew_deadline:
                self.is_leader = False
                logger.error("leadership lost", extra={"lease": self.name})
                return

    async def release(self) -> None:
        """Give the Lease up (a clean shutdown), so another replica need not wait for it to
        expire."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = await asyncio.to_thread(self._read)
            if lease is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.renew_time = datetime.now(UTC) - timedelta(days=1)
            await asyncio.to_thread(self._replace, lease)
            logger.info("lease released", extra={"lease": self.name})
        except ApiException as exc:
            logger.warning("lease not released: %s", exc.reason)

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await asyncio.to_thread(self._acquire_or_renew)
        except ApiException as exc:
            # 409: another replica wrote the Lease since we read it; it won this round.
            if exc.status != 409:
                logger.warning("lease not acquired or renewed: %s %s", exc.status, exc.reason)
            return False
        except (OSError, HTTPError) as exc:  # the API server is unreachable
            logger.warning("lease not acquired or renewed: %s", exc)
            return False

    def _acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        lease = self._read()
        if lease is None:
            self._create(now)
            return True
        spec = lease.spec
        held_by_us = spec.holder_identity == self.identity
        renewed = _aware(spec.renew_time or spec.acquire_time)
        duration = spec.lease_duration_seconds or self.terms.duration
        expired = renewed is None or renewed + timedelta(seconds=duration) < now
        if not held_by_us and spec.holder_identity and not expired:
            return False
        if not held_by_us:
            spec.holder_identity = self.identity
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.renew_time = now
        spec.lease_duration_seconds = int(self.terms.duration)
        self._replace(lease)  # conditional on the resourceVersion read: a lost race is a 409
        return True

    def _read(self) -> Any:
        try:
            return self._leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, now: datetime) -> None:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=int(self.terms.duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        self._leases.create_namespaced_lease(self.namespace, body)

    def _replace(self, lease: Any) -> None:
        # A merge patch that names the resourceVersion read is conditional on it: the API
        # server answers 409 if anyone wrote the Lease in between.
        spec = lease.spec
        patch = {
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": spec.holder_identity,
                "leaseDurationSeconds": spec.lease_duration_seconds,
                "acquireTime": _rfc3339(spec.acquire_time),
                "renewTime": _rfc3339(spec.renew_time),
                "leaseTransitions": spec.lease_transitions,
            },
        }
        self._leases.patch_namespaced_lease(self.name, self.namespace, patch)


def _rfc3339(value: datetime | None) -> str | None:
    """A MicroTime as the API writes it."""
    if value is None:
        return None
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[union-attr]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
