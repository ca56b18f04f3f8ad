"""What a device and its worker process say to each other, for both sides.

The worker (`python -m qrt_device.worker`) does the device's native work: libqasm's parse and
Aer's simulation, either of which can end a process (SIGFPE, SIGSEGV) or run for a long time.
Over the worker's stdin and stdout, each message is a 4-byte big-endian length and that many
bytes of msgpack: the device sends one `Setup`, the worker answers `Ready` once it can run
circuits; then each `Task` gets one `Outcome`.
"""

from __future__ import annotations

import struct
from typing import IO

import msgspec

from qrt_common.errors import MalformedMessage
from qrt_common.wire import Message

from .calibration import Snapshot

HEADER = struct.Struct(">I")
"""The length before each message."""
MAX_MESSAGE_BYTES = 1 << 31
"""No message is this long (a reply of `max_shots` x `max_bits` raw data is far shorter)."""


class Noise(Message, frozen=True):
    """The calibration a task is simulated with."""

    version: tuple[int, int]
    """`Calibration.version` of `values`: the worker reuses a model built for the same one."""
    values: Snapshot


class Setup(Message, frozen=True, tag="setup", tag_field="kind"):
    """The first message to a worker: the device it works for."""

    config: str
    """The device's `DeviceConfig`, as JSON."""
    noise: Noise | None
    """The calibration of the moment, to warm up with (None: the device is ideal)."""


class Task(Message, frozen=True, tag="task", tag_field="kind"):
    """One execute: parse, check against the device's rules, simulate."""

    circuit: str
    shots: int
    seed: int | None
    raw_data: bool
    noise: Noise | None
    """None: ideal results."""


class Ready(Message, frozen=True, tag="ready", tag_field="kind"):
    """The worker has imported and warmed up its simulator."""


class Counted(Message, frozen=True, tag="counts", tag_field="kind"):
    """What a task measured."""

    counts: dict[str, int]
    """Bitstring `b[n-1]...b[0]` to how often it was measured."""
    raw_data: list[str] | None
    """Every shot's bitstring, in order (when asked for)."""


class Rejected(Message, frozen=True, tag="rejected", tag_field="kind"):
    """The circuit breaks a rule (`CqasmError`): `rule`, its `line` (0: none), and why."""

    rule: str
    line: int
    message: str


class Failed(Message, frozen=True, tag="failed", tag_field="kind"):
    """The task raised something else (the worker goes on)."""

    message: str


Outcome = Counted | Rejected | Failed
Answer = Ready | Outcome

_ENCODER = msgspec.msgpack.Encoder()
_INSTRUCTIONS = msgspec.msgpack.Decoder(Setup | Task)
_ANSWERS = msgspec.msgpack.Decoder(Answer)


def frame(message: Message) -> bytes:
    """`message` with its length before it, ready to write."""
    body = _ENCODER.encode(message)
    return HEADER.pack(len(body)) + body


def length_of(header: bytes) -> int:
    """The length a header announces; raises MalformedMessage if no message is that long."""
    (length,) = HEADER.unpack(header)
    if length >= MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"a worker message of {length} bytes")
    return int(length)


def read_answer(body: bytes) -> Answer:
    """A worker's message; raises MalformedMessage if it is none."""
    try:
        answer: Answer = _ANSWERS.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"not a worker answer: {exc}") from None
    return answer


def read_instruction(stream: IO[bytes]) -> Setup | Task | None:
    """The next message to the worker from `stream`; None once the device closed it. Raises
    MalformedMessage for anything else."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length = length_of(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    try:
        instruction: Setup | Task = _INSTRUCTIONS.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"not a worker task: {exc}") from None
    return instruction
