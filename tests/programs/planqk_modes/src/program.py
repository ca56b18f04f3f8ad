"""Responds as `params["respond"]` says, to exercise every way a Python template can end."""

import json
import math  # noqa: F401 (for the expressions of respond=shape)
import os
import subprocess
import sys
import time

from pydantic import BaseModel


class ResultResponse:
    def __init__(self, result, metadata=None):
        self.result = result
        self.metadata = metadata


class ErrorResponse:
    def __init__(self, code, detail):
        self.code = code
        self.detail = detail


class Answer(BaseModel):
    answer: int
    nested: dict


def run(data=None, params=None):
    respond = params.get("respond", "result")
    print("stdout line", flush=True)
    print("stderr line", file=sys.stderr, flush=True)
    if respond == "interims":
        for n in range(3):
            print(f"PlanQK:Job:InterimResult: {json.dumps({'step': n})}", flush=True)
        print('PlanQK:Job:InterimResult:{"nospace": true}', flush=True)
        print("PlanQK:Job:InterimResult: {not json", flush=True)
        print('PlanQK:Job:Result: {"ignored": true}', flush=True)
    if respond == "shape":
        # Prints `lines`, returns what `result` spells as a Python expression.
        for line in params.get("lines", []):
            print(line, flush=True)
        return eval(params["result"])
    if respond == "escape":
        # tests/support/escaper.py: processes that try to outlive the job; then end as asked.
        escaper = params["escaper"]
        if "escaper_source" in params:  # the tests' checkout may be out of the job's sight
            escaper = os.path.join(os.getcwd(), "escaper.py")
            with open(escaper, "w") as f:
                f.write(params["escaper_source"])
        command = [sys.executable, escaper, params["token"], os.getcwd()]
        subprocess.Popen(command, start_new_session=True)
        while not os.path.exists("escaped"):
            time.sleep(0.01)
        with open("escaped") as f:
            print(f"PlanQK:Job:InterimResult: {json.dumps({'escaped': f.read().split()})}")
        respond = params["end"]
    if respond == "hang":
        time.sleep(3600)
    if respond == "sleep":
        with open(params["pidfile"], "w") as f:
            f.write(f"{os.getpid()} {os.readlink('/proc/self/ns/pid')}")
        time.sleep(60)
    if respond == "probe":
        # What a PlanQK program sees of the platform (tests/executor/test_sandbox.py).
        import socket

        try:
            socket.create_connection(("127.0.0.1", 5672), timeout=5).close()
            broker = "connected"
        except OSError as exc:
            broker = exc.strerror
        try:
            with open(params["secret"]) as f:
                secret = f.read()
        except OSError as exc:
            secret = exc.strerror
        return {"environ": dict(os.environ), "broker": broker, "secret": secret}
    if respond == "error":
        return ErrorResponse(code="400", detail="values must be numbers")
    if respond == "dict":
        return {"plain": data}
    if respond == "pydantic":
        return Answer(answer=42, nested={"data": data})
    if respond == "raise":
        raise ValueError("boom")
    if respond == "exit":
        sys.exit(3)
    if respond == "unserializable":
        return {"when": {1, 2}}
    return ResultResponse(result={"echo": data}, metadata={"respond": respond})
