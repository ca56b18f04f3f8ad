"""Prints PlanQK markers as /var/input/params.json says, to exercise the one-shot contract."""

import json
import os
import socket
import subprocess
import sys
import time

with open("/var/input/data.json") as f:
    data = json.load(f)
with open("/var/input/params.json") as f:
    params = json.load(f)
mode = params.get("print", "single")
print("hello from the sandbox")
print("a line on stderr", file=sys.stderr)

if mode == "single":
    print("PlanQK:Job:InterimResult:", json.dumps({"progress": 0.5}))
    print("PlanQK:Job:Result:", json.dumps({"data": data}))
elif mode == "nospace":
    print('PlanQK:Job:Result:{"compact": true}')
elif mode == "multiline":
    print("PlanQK:Job:MultilineResult")
    print(json.dumps({"sum": 42, "list": [1, 2]}, indent=2))
    print("PlanQK:Job:MultilineResult")
elif mode == "twice":
    print('PlanQK:Job:Result: {"first": 1}')
    print("PlanQK:Job:MultilineResult")
    print('{"second": 2}')
    print("PlanQK:Job:MultilineResult")
    print('PlanQK:Job:Result: {"third": 3}')
elif mode == "multiline-first":
    print("PlanQK:Job:MultilineResult")
    print('{"first": "block"}')
    print("PlanQK:Job:MultilineResult")
    print('PlanQK:Job:Result: {"second": 2}')
elif mode == "exit":
    print('PlanQK:Job:Result: {"too": "late"}')
    sys.exit(4)
elif mode == "badjson":
    print("PlanQK:Job:Result: {not json")
    print('PlanQK:Job:Result: {"valid": "but second"}')
elif mode == "badmultiline":
    print("PlanQK:Job:MultilineResult")
    print("{ nope")
    print("PlanQK:Job:MultilineResult")
elif mode == "unclosed":
    print("PlanQK:Job:MultilineResult")
    print('{"never": "closed"}')
elif mode == "sandbox":
    checks = {"input": sorted(os.listdir("/var/input")), "cwd": os.getcwd(), "pid": os.getpid()}
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        checks["network"] = "reachable"
    except OSError as exc:
        checks["network"] = type(exc).__name__
    for path in ("/written-by-job", "/var/input/data.json", os.path.join(os.getcwd(), "x")):
        try:
            open(path, "w").close()
            checks.setdefault("writable", []).append(path)
        except OSError:
            pass
    checks["secret_env"] = sorted(
        k for k in os.environ if k.startswith("QRT_") and k not in ("QRT_JOB_ID", "QRT_BACKEND")
    )
    checks["hidden"] = os.listdir(params["hidden"])
    # Every process it can see (bubblewrap, pid 1, too): the environments they started with.
    environments = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environments.append(f.read().decode(errors="replace"))
        except OSError:
            pass
    checks["environments"] = environments
    with open("/tmp/scratch", "w") as f:
        checks["tmp_writable"] = f.write("x") == 1
    print("PlanQK:Job:Result:", json.dumps(checks))
elif mode == "sleep":
    print("PlanQK:Job:InterimResult:", json.dumps({"sleeping": True}), flush=True)
    time.sleep(60)
elif mode == "lines":
    for line in params["lines"]:
        print(line, flush=True)
elif mode == "escape":
    # tests/support/escaper.py: processes that try to outlive the job; then end as asked.
    # Its text comes along: the sandbox shows this program nothing of the tests' checkout.
    with open("/tmp/escaper.py", "w") as f:
        f.write(params["escaper_source"])
    subprocess.Popen(
        ["python3", "/tmp/escaper.py", params["token"], "/tmp"], start_new_session=True
    )
    while not os.path.exists("/tmp/escaped"):
        time.sleep(0.01)
    with open("/tmp/escaped") as f:
        print("PlanQK:Job:InterimResult:", json.dumps({"escaped": f.read().split()}), flush=True)
    if params["end"] == "raise":
        sys.exit(1)
    if params["end"] == "hang":
        time.sleep(3600)
    print('PlanQK:Job:Result: {"done": true}')
elif mode == "syscalls":
    # What the seccomp filter denies (tests/executor/test_oneshot_and_template.py).
    import ctypes
    import errno
    import platform

    libc = ctypes.CDLL(None, use_errno=True)
    keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]

    def outcome(result):
        return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]

    found = {
        "ptrace": outcome(libc.ptrace(0, 0, None, None)),
        "unshare": outcome(libc.unshare(0x10000000)),
        "keyctl": outcome(libc.syscall(keyctl, 0, -3, 0)),
        "process": subprocess.run(["true"]).returncode,
    }
    print("PlanQK:Job:Result:", json.dumps(found))
elif mode == "attack":
    # What an attacker would try (tests/executor/test_oneshot_and_template.py).
    found = {}
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/token") as f:
            found["token"] = f.read()
    except OSError as exc:
        found["token"] = type(exc).__name__
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=5).close()
        found["broker"] = "connected"
    except OSError as exc:
        found["broker"] = type(exc).__name__
    with open("/proc/self/status") as f:
        found["capabilities"] = [line.split()[1] for line in f if line.startswith("CapEff")]
    # An interim result: the job fails below, and a failed one-shot job keeps no result.
    print("PlanQK:Job:InterimResult:", json.dumps(found), flush=True)
    if params.get("then") == "allocate":
        bytearray(4 << 30)
    elif params.get("then") == "spin":
        while True:
            pass
# "none": exits 0 without a result
