def main(backend, user_messenger, **kwargs):
    print("about to fail")
    raise ValueError("boom")
