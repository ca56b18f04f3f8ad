"""PlanQK's Service API (`/services/{service}/...`): every program is a service, and an
execution of it is a job under PlanQK's names (README, "The Service API").

    async with AsyncClient(url) as client:
        execution = await client.services.start("planqk-starter", data={"values": [1, 2]})
        execution = await client.services.wait("planqk-starter", execution.id, timeout=60)
        print(await client.services.result("planqk-starter", execution.id))
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .models import Execution, JobInfo
from .polling import poll_until
from .transport import Transport


class AsyncServices:
    """The Service API of every program: `client.services.start(...)`, `.get(...)`, ..."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @staticmethod
    def _path(service: str, execution_id: str | None = None, tail: str = "") -> str:
        base = f"/services/{quote(service, safe='')}/"
        return base if execution_id is None else f"{base}{quote(execution_id, safe='')}{tail}"

    async def start(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Start an execution of `service` with PlanQK's input by value (`data` and `params`,
        JSON objects) and return it (PENDING). Safe to retry, like `AsyncClient.run`. Raises
        NotFound for an unknown service, InvalidInput naming the field at fault, TooLarge over
        the platform's input limit (1 MB by default)."""
        body: dict[str, Any] = {}
        if data is not None:
            body["data"] = dict(data)
        if params is not None:
            body["params"] = dict(params)
        query = {} if instance is None else {"instance": instance}
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = await self._transport.request(
            "POST", self._path(service), retry=True, json=body, headers=headers, params=query
        )
        return Execution.of(service, response.json())

    async def get(self, service: str, execution_id: str) -> Execution:
        """The execution now. Raises NotFound for an unknown service or execution."""
        path = self._path(service, execution_id)
        return Execution.of(
            service, (await self._transport.request("GET", path, retry=True)).json()
        )

    async def executions(self, service: str, *, limit: int = 20) -> list[Execution]:
        """The service's latest executions, newest first (the jobs of its program: generation
        2's listing of `GET /services/{service}/` is not served)."""
        params = {"program": service, "limit": str(limit)}
        response = await self._transport.request("GET", "/jobs", retry=True, params=params)
        return [Execution.of_job(JobInfo.of(job)) for job in response.json()["jobs"]]

    # `timeout` as in AsyncJob.wait, not asyncio's.
    async def wait(
        self,
        service: str,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Execution:
        """The execution once it has ended (SUCCEEDED, FAILED or CANCELLED), polling it.
        Raises WaitTimeout if it has not ended within `timeout` seconds (None: no limit)."""
        return await poll_until(
            lambda: self.get(service, execution_id),
            lambda execution: execution.ended_yet,
            lambda execution: f"execution {execution_id} is still {execution.status}",
            timeout,
        )

    async def result(self, service: str, execution_id: str) -> Any:
        """An ended execution's result: what the program returned when it SUCCEEDED (a
        PlanQK program's `{"result", "metadata"}`), `{"code", "detail"}` when it FAILED. Raises
        Conflict before the execution ended, and for a CANCELLED one."""
        path = self._path(service, execution_id, "/result")
        return (await self._transport.request("GET", path, retry=True)).json()

    async def interim_results(self, service: str, execution_id: str, *, last: bool = False) -> Any:
        """The interim results published so far, oldest first; `last`: only the latest (None
        if there is none)."""
        path = self._path(service, execution_id, "/interim-results")
        params = {"last": "true"} if last else {}
        return (await self._transport.request("GET", path, retry=True, params=params)).json()

    async def log(self, service: str, execution_id: str) -> list[str]:
        """The execution's log so far, line by line."""
        path = self._path(service, execution_id, "/log")
        entries = (await self._transport.request("GET", path, retry=True)).json()
        return [str(entry["message"]) for entry in entries]

    async def cancel(self, service: str, execution_id: str) -> Execution:
        """Cancel a pending or running execution and return it. Raises Conflict once it
        ended."""
        path = self._path(service, execution_id, "/cancel")
        return Execution.of(service, (await self._transport.request("PUT", path)).json())
