"""PlanQK's starter program: adds up `data["values"]`, rounding the sum if `params["round_off"]`.

Each partial sum is published as an interim result (a `PlanQK:Job:InterimResult:` line). Input
it cannot add up is the caller's mistake: an `ErrorResponse` with code "400" naming the value,
as PlanQK services report bad input (code "500" stays for the program's own failures).
"""

import json
import math
import time
from typing import Any

from .libs.return_objects import ErrorResponse, ResultResponse


def _bad_input(data: Any, params: Any) -> str | None:
    """What is wrong with the input, for people; None if nothing."""
    if not isinstance(data, dict):
        return f"data must be an object, not {type(data).__name__}"
    if not isinstance(params, dict):
        return f"params must be an object, not {type(params).__name__}"
    values = data.get("values", [])
    if not isinstance(values, list):
        return f"data.values must be a list of numbers, not {type(values).__name__}"
    for index, value in enumerate(values):
        # JSON's true and false are not numbers, though Python adds them up.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (
                f"data.values[{index}] must be a number, not {type(value).__name__} "
                f"{json.dumps(value)[:80]}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            return f"data.values[{index}] must be a finite number, not {value}"
    round_off = params.get("round_off", False)
    if not isinstance(round_off, bool):
        return f"params.round_off must be true or false, not {json.dumps(round_off)[:80]}"
    return None


def run(
    data: dict[str, Any] | None = None, params: dict[str, Any] | None = None
) -> ResultResponse | ErrorResponse:
    data = {} if data is None else data
    params = {} if params is None else params
    problem = _bad_input(data, params)
    if problem is not None:
        print(f"Bad input: {problem}")
        return ErrorResponse(code="400", detail=problem)
    values = data.get("values", [])
    round_off = params.get("round_off", False)
    print(f"Starting execution: {len(values)} values, round_off={round_off}")
    started = time.time()
    try:
        total = 0
        for value in values:
            total += value
            if isinstance(total, float) and not math.isfinite(total):
                beyond = "the sum of data.values is beyond a float's range"
                return ErrorResponse(code="400", detail=beyond)
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
