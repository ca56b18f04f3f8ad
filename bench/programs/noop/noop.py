def main(backend, user_messenger, **kwargs):
    return "ok"
