def main(backend, user_messenger):
    pass
