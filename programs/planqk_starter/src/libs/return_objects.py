"""The response classes of PlanQK's Python template: serialized as their attributes."""

from typing import Any


class Response:
    pass


class ResultResponse(Response):
    def __init__(self, result: dict[str, Any], metadata: dict[str, Any] | None = None):
        self.result = result
        self.metadata = metadata


class ErrorResponse(Response):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
