"""Starts tests/support/escaper.py (processes that try to outlive their job), publishes their
pids once they run, then ends as `end` says: "return", "raise", or "hang" until stopped."""

import os
import subprocess
import sys
import time


def main(backend, user_messenger, escaper, token, end="return", escaper_source=None):
    if escaper_source is not None:  # the tests' checkout may be out of the job's sight
        escaper = os.path.join(os.getcwd(), "escaper.py")
        with open(escaper, "w") as f:
            f.write(escaper_source)
    subprocess.Popen([sys.executable, escaper, token, os.getcwd()], start_new_session=True)
    while not os.path.exists("escaped"):
        time.sleep(0.01)
    with open("escaped") as f:
        user_messenger.publish({"escaped": f.read().split()})
    if end == "raise":
        raise RuntimeError("the job fails")
    if end == "hang":
        time.sleep(3600)
    return "done"
