def main(backend, user_messenger):
    user_messenger.publish("first", final=True)
    user_messenger.publish("second", final=True)
    return "returned"
