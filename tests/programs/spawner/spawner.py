import subprocess
import time


def main(backend, user_messenger, pidfile):
    child = subprocess.Popen(["sleep", "1000"])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    print("spawned", child.pid, flush=True)
    time.sleep(1000)
