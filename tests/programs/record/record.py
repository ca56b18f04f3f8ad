import os
import secrets
import time


def main(backend, user_messenger, path, seconds=0.5, ticks=3):
    """Append `<job> <process> start|alive|end <time>` lines to `path`, so tests can tell whether
    two attempts of one job ever ran at the same time."""
    job = os.environ["QRT_JOB_ID"]
    # A job process may have a PID namespace of its own, where every one is process 2 (and a
    # namespace's number is used again once it is gone): a token tells them apart.
    process = f"{os.getpid()}.{secrets.token_hex(8)}"

    def note(what):
        with open(path, "a") as f:
            f.write(f"{job} {process} {what} {time.time():.6f}\n")

    note("start")
    for tick in range(ticks):
        user_messenger.publish({"tick": tick})
        deadline = time.time() + seconds / ticks
        while time.time() < deadline:
            note("alive")
            time.sleep(0.02)
    note("end")
    return "recorded"
