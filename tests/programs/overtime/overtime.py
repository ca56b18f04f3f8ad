import time


def main(backend, user_messenger):
    user_messenger.publish("started")
    time.sleep(30)
