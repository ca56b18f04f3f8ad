"""Publishes and returns what its params spell as Python expressions, to exercise qrt's rule
for results: each of `interims` is published (with `catch`, a refused one is caught and logged),
each of `frames` (`[kind, text]`, kind `interim`, `final` or `failure`: then it exits 1) is
sent as it is, bypassing `publish`, and `result` is returned."""

import math  # noqa: F401 (for the expressions)

import numpy as np  # noqa: F401 (for the expressions)

from qrt_executor.job_protocol import Failure, Final, Interim


def main(backend, user_messenger, interims=(), frames=(), result=None, catch=False):
    for expression in interims:
        try:
            user_messenger.publish(eval(expression))
        except ValueError as exc:
            if not catch:
                raise
            print(f"refused: {exc}")
    for kind, text in frames:
        if kind == "failure":
            user_messenger.send(Failure("the program says it failed", text))
            raise SystemExit(1)
        user_messenger.send(Interim(text) if kind == "interim" else Final(text))
    return eval(result) if result is not None else None
