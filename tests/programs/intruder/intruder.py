"""Tries one thing an attacker would from inside a job and returns what it found, or fails
the way the sandbox makes it fail (tests/executor/test_sandbox.py)."""

import ctypes
import errno
import os
import platform
import signal
import socket
import subprocess
import threading
import time

# keyctl, bpf and perf_event_open have no C library wrapper: their numbers, by architecture.
_NUMBERS = {"x86_64": (250, 321, 298), "aarch64": (219, 280, 241)}


def _outcome(result):
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]


def _system_calls():
    """What each system call the seccomp filter denies answers, and whether threads and
    processes still start."""
    libc = ctypes.CDLL(None, use_errno=True)
    keyctl, bpf, perf_event_open = _NUMBERS[platform.machine()]
    found = {
        "ptrace": _outcome(libc.ptrace(0, 0, None, None)),  # PTRACE_TRACEME
        "unshare": _outcome(libc.unshare(0x10000000)),  # CLONE_NEWUSER
        "mount": _outcome(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "keyctl": _outcome(libc.syscall(keyctl, 0, -3, 0)),  # the session keyring's id
        "bpf": _outcome(libc.syscall(bpf, 0, None, 0)),
        "perf_event_open": _outcome(libc.syscall(perf_event_open, None, 0, -1, -1, 0)),
    }
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    found["thread"] = "ok"
    found["process"] = "ok" if subprocess.run(["true"]).returncode == 0 else "failed"
    return found


def _read(path):
    try:
        with open(path, "rb") as file:
            return file.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror}"


def _neighbour(pid, name):
    """What a job can do to process `pid` of its user outside it, listening on abstract unix
    socket `name`, and to a process it started itself."""
    outcome = {"pid_namespace": os.readlink("/proc/self/ns/pid")}
    outcome["environ"] = _read(f"/proc/{pid}/environ")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect("\0" + name)
        outcome["abstract"] = "connected"
    except OSError as exc:
        outcome["abstract"] = errno.errorcode[exc.errno]
    finally:
        client.close()
    for signal_name in ("SIGSTOP", "SIGKILL"):  # the last, as it would end the process
        try:
            os.kill(pid, getattr(signal, signal_name))
            outcome[signal_name] = "ok"
        except OSError as exc:
            outcome[signal_name] = errno.errorcode[exc.errno]
    # Its own: a subprocess stopped and killed, itself probed.
    child = subprocess.Popen(["sleep", "60"])
    child.send_signal(signal.SIGSTOP)
    child.kill()
    outcome["own_child"] = child.wait()
    os.kill(os.getpid(), 0)
    outcome["itself"] = "ok"
    return outcome


def _attempt(action):
    try:
        return action()
    except Exception as exc:  # what failed, and how, is what the test wants to see
        return f"{type(exc).__name__}: {exc}"


def _write_and_read(path):
    with open(path, "w") as file:
        file.write("mine")
    with open(path) as file:
        return file.read()


def _simulate():
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator

    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    simulator = AerSimulator()
    # Level 3 looks its plugins up by entry points: metadata read from site-packages now.
    compiled = transpile(circuit, simulator, optimization_level=3, seed_transpiler=1)
    counts = simulator.run(compiled, shots=100, seed_simulator=1).result().get_counts()
    return sorted(counts)


def _pool(method):
    import multiprocessing

    with multiprocessing.get_context(method).Pool(2) as pool:
        return pool.map(abs, [-1, -2])


def _legitimate():
    """What programs do and must still do in the sandbox."""
    import importlib
    import tempfile

    return {
        "lazy_import": _attempt(lambda: importlib.import_module("qiskit.qasm3").__name__),
        "simulate": _attempt(_simulate),
        "fork_pool": _attempt(lambda: _pool("fork")),
        "spawn_pool": _attempt(lambda: _pool("spawn")),
        "workdir": _attempt(lambda: _write_and_read("written-here")),
        "tmp": _attempt(lambda: _write_and_read(os.path.join(tempfile.gettempdir(), "mine"))),
        "home": _attempt(lambda: _write_and_read(os.path.expanduser("~/.mine"))),
        "subprocess": _attempt(lambda: subprocess.run(["ls", "/usr"], check=True).returncode),
    }


def main(backend, user_messenger, attack, path="", pid=0, count=0, size=0, target=""):
    if attack == "legitimate":
        return _legitimate()
    if attack == "environment":
        return {
            "environ": dict(os.environ),
            "initial": _read("/proc/self/environ"),
            "executor": _read(f"/proc/{pid}/environ"),
            "home": os.environ.get("HOME"),
        }
    if attack == "read":  # "{parent}" stands for the job process's parent's pid
        return _read(path.replace("{parent}", str(os.getppid())))
    if attack == "list":
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
    if attack == "link":
        try:
            os.symlink(target, path)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
        return "linked"
    if attack == "write":
        try:
            with open(path, "w") as file:
                file.write("owned")
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
        return "wrote"
    if attack == "connect":
        try:
            socket.create_connection(("127.0.0.1", int(count)), timeout=5).close()
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
        return "connected"
    if attack == "fork":
        # Children that wait, so they all exist at once; the parent ends them afterwards.
        read_end, write_end = os.pipe()
        children = []
        for _ in range(count):
            child = os.fork()
            if child == 0:
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
            children.append(child)
        os.close(write_end)
        for child in children:
            os.waitpid(child, 0)
        return len(children)
    if attack == "allocate":
        block = bytearray(size)
        return len(block)
    if attack == "spin":
        while True:
            pass
    if attack == "open":
        files = []
        for _ in range(count):
            files.append(os.open("/dev/null", os.O_RDONLY))
        return len(files)
    if attack == "print":
        line = "x" * 1023
        for _ in range(size // 1024):
            print(line)
        return "printed"
    if attack == "syscalls":
        return _system_calls()
    if attack == "memory-outside-mappings":
        # Memory no mapping holds, so RLIMIT_AS does not count it: a memfd written to, and a
        # System V shared memory segment (its pages outlive a detach).
        found = {}
        try:
            fd = os.memfd_create("hoard")
            for _ in range(size >> 20):
                os.write(fd, b"x" * (1 << 20))
            found["memfd"] = os.fstat(fd).st_size
        except OSError as exc:
            found["memfd"] = errno.errorcode[exc.errno]
        libc = ctypes.CDLL(None, use_errno=True)
        segment = libc.shmget(0, ctypes.c_size_t(1 << 20), 0o1600)  # IPC_PRIVATE, IPC_CREAT
        found["shmget"] = _outcome(segment)
        return found
    if attack == "fill":
        with open(path, "wb") as file:
            for _ in range(size // 65536):
                file.write(b"x" * 65536)
                file.flush()
        return "filled"
    if attack == "dumpable":
        return ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    if attack == "signal":
        # `pid`: a process outside to SIGKILL; `count`: one to probe with signal 0 only.
        outcome = {}
        for name, target, number in (("kill", pid, 9), ("probe", count, 0)):
            try:
                os.kill(target, number)
                outcome[name] = "ok"
            except OSError as exc:
                outcome[name] = errno.errorcode[exc.errno]
        outcome["pid"] = os.getpid()
        outcome["seen"] = sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())
        return outcome
    if attack == "neighbour":
        return _neighbour(pid, path)
    if attack == "sleep":
        time.sleep(count)
        return "slept"
    if attack == "fork-and-return":
        # A child that returns from main() (sys.exit in it), as a forked worker does, while
        # the job process itself goes on: the job ends with the job process, not the child.
        child = os.fork()
        if child == 0:
            raise SystemExit(0)
        os.waitpid(child, 0)
        time.sleep(count)
        return "parent done"
    if attack == "lie-and-stay":
        # Says it exited, and goes on printing with its sockets open.
        user_messenger._channel.sendall(b'{"kind":"exit","code":0}\n')
        while True:
            print("still here", flush=True)
            time.sleep(0.01)
    if attack == "lie-about-exit":
        # Says it exited (the frame qrt's own code sends last), closes its sockets, and runs on
        # under the name `path`: the executor takes its word, and kills it.
        channel = user_messenger._channel
        channel.sendall(b'{"kind":"exit","code":0}\n')
        os.close(1)
        os.close(2)
        channel.close()
        ctypes.CDLL(None).prctl(15, path.encode(), 0, 0, 0)  # PR_SET_NAME
        while True:
            time.sleep(0.01)
    raise ValueError(f"unknown attack {attack!r}")
