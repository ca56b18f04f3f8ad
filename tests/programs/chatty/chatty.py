import sys


def main(backend, user_messenger, lines=10, width=10):
    for n in range(lines):
        print(f"out {n} " + "x" * width)
        print(f"err {n}", file=sys.stderr)
    return lines
