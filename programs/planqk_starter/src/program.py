"""PlanQK's starter program: adds up `data["values"]`, rounding the sum if `params["round_off"]`.

Each partial sum is published as an interim result (a `PlanQK:Job:InterimResult:` line).
"""

import json
import time
from typing import Any

from .libs.return_objects import ErrorResponse, ResultResponse


def run(
    data: dict[str, Any] | None = None, params: dict[str, Any] | None = None
) -> ResultResponse | ErrorResponse:
    data, params = data or {}, params or {}
    values = data.get("values", [])
    round_off = bool(params.get("round_off", False))
    print(f"Starting execution: {len(values)} values, round_off={round_off}")
    started = time.time()
    try:
        total = 0
        for value in values:
            total += value
            print("PlanQK:Job:InterimResult:", json.dumps({"sum": total}))
        if round_off:
            total = round(total)
    except Exception as e:
        print(f"An error occurred: {e}")
        return ErrorResponse(code="500", detail=f"{type(e).__name__}: {e}")
    print("Calculation successfully executed")
    return ResultResponse(
        result={"sum": total},
        metadata={"execution_time": round(time.time() - started, 3)},
    )
