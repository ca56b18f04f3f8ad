import time


def main(backend, user_messenger):
    """Lock the job's device and keep it (until the job is cancelled)."""
    backend.client.request("initialize", backend.session_id)
    user_messenger.publish("locked")
    time.sleep(60)
