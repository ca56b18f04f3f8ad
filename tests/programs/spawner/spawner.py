import subprocess
import time


def main(backend, user_messenger, pidfile, seconds="1000"):
    child = subprocess.Popen(["sleep", seconds])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    print("spawned", child.pid, flush=True)
    time.sleep(1000)
