import os
import signal


def main(backend, user_messenger, how="exit"):
    print("going down", flush=True)
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)
