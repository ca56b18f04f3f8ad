import time


def main(backend, user_messenger, seconds, ticks=1):
    for tick in range(ticks):
        user_messenger.publish({"tick": tick})
        print(f"tick {tick}", flush=True)
        time.sleep(seconds / ticks)
    return "woke up"
