"""Every error qrt raises on purpose, in one hierarchy.

```
QrtError                        str(): a message for people; `field`: the input at fault, if any
├── InvalidInput                input that cannot be used as given (HTTP 400)
│   ├── InvalidProgram          a program's files or metadata
│   ├── InvalidArchive          an uploaded program archive
│   │   └── ArchiveTooLarge     ... over its size limit (also TooLarge: HTTP 413)
│   ├── CqasmError              a circuit: names the broken `rule` and its `line`
│   └── UnsupportedEncoding     a request body in a content coding qrt does not decode (415)
├── TooLarge                    a body or an archive over its limit (HTTP 413)
├── Unauthenticated             no usable API key or access token (HTTP 401)
├── NotFound                    no such job, program or service (HTTP 404)
├── Forbidden                   not this caller's to use or change (HTTP 403)
├── LimitReached                a caller's submit rate or job cap is used up (HTTP 429)
├── Conflict                    the current state does not allow it (HTTP 409)
│   ├── IllegalTransition       a job asked to move to a status its own cannot reach
│   ├── ProgramNameTaken        the owner has a program of that name
│   └── AccountExists           a user, instance or key of that name exists already
├── Unavailable                 a backing service cannot be reached now: retried (HTTP 503)
│   ├── BusUnavailable          the message broker
│   ├── StoreUnavailable        the job store
│   └── DeviceUnavailable       a 2300 device did not answer (in time, or with a reply)
├── DeviceRefused               a 2300 device answered with a failure reply
├── MalformedMessage            a bus message nobody can ever handle: dead-lettered
├── NotRunnable                 a job cannot run where it was sent; the job fails
│   ├── ProgramNotRunnable      its program is gone or its archive cannot be used
│   ├── SandboxUnavailable      the one-shot runner cannot run programs at all
│   ├── ZygoteGone              the executor's zygote ended (a new one is started)
│   └── ParamsUndecodable       its params cannot be decoded where the program runs
├── SimulationFailed            a simulator could not run a job's circuits (says Aer's reason)
├── ResultRefused               a result qrt will not keep (not strict JSON, over its limit);
│                               also a ValueError, as json's own refusals are
└── ConfigurationError          the configuration cannot work: the service exits, saying why
    ├── StoreSetupError         an unknown store URL, or a schema newer than this qrt
    └── DeviceConfigError       a device's TOML configuration
```

Only `MalformedMessage` sends a bus message to the dead letters; `Unavailable` retries it in
place; any other error returns it to its queue until the broker's delivery limit.
"""

from __future__ import annotations

__all__ = [
    "AccountExists",
    "ArchiveTooLarge",
    "BusUnavailable",
    "ConfigurationError",
    "Conflict",
    "CqasmError",
    "DeviceConfigError",
    "DeviceRefused",
    "DeviceUnavailable",
    "Forbidden",
    "IllegalTransition",
    "InvalidArchive",
    "InvalidInput",
    "InvalidProgram",
    "LimitReached",
    "MalformedMessage",
    "NotFound",
    "NotRunnable",
    "ParamsUndecodable",
    "ProgramNameTaken",
    "ProgramNotRunnable",
    "QrtError",
    "ResultRefused",
    "SandboxUnavailable",
    "SimulationFailed",
    "StoreSetupError",
    "StoreUnavailable",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedEncoding",
    "ZygoteGone",
]


class QrtError(Exception):
    """Base of every error qrt raises on purpose; `field` names the input at fault, if any."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(QrtError):
    """Input that cannot be used as given; the message says why."""


class InvalidProgram(InvalidInput):
    """A program's files exist but cannot be used."""


class UnsupportedEncoding(InvalidInput):
    """A request body in a content coding (`Content-Encoding`) qrt does not decode."""


class TooLarge(QrtError):
    """A request body or an archive is over its size limit."""


class InvalidArchive(InvalidInput):
    """An uploaded program archive that cannot be unpacked safely."""


class ArchiveTooLarge(InvalidArchive, TooLarge):
    """An archive over its size limit, packed or unpacked."""


class CqasmError(InvalidInput):
    """A circuit that cannot be read or run; `line` is 1-based (0: not tied to a line), `rule`
    names what it breaks (`syntax`, `operands`, `topology`, ...)."""

    def __init__(self, message: str, line: int = 0, rule: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.rule = rule

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class Unauthenticated(QrtError):
    """The request carries no API key or access token, or one that is wrong, expired or
    revoked; the message says which."""


class NotFound(QrtError):
    """No job, program or service of that id."""


class Forbidden(QrtError):
    """The caller may not use or change it."""


class LimitReached(QrtError):
    """A submit over one of the caller's limits (`qrt_gateway.quotas`): `limit` names it
    (`user_submit_rate`, `user_active_jobs`, `instance_submit_rate`, `instance_active_jobs`),
    `retry_after` is whole seconds until it may pass."""

    def __init__(self, message: str, *, limit: str, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


class Conflict(QrtError):
    """The current state does not allow it (a job that ended, a name in use)."""


class IllegalTransition(Conflict):
    """A job was asked to move to a status its current one cannot reach."""

    def __init__(self, job_id: str, current: str, wanted: str) -> None:
        super().__init__(f"job {job_id} cannot go from {current} to {wanted}")
        self.job_id, self.current, self.wanted = job_id, current, wanted


class ProgramNameTaken(Conflict):
    """The owner already has a program of that name."""


class AccountExists(Conflict):
    """A user, an instance or an API key of that name or id exists already."""


class Unavailable(QrtError):
    """A backing service (the broker, the store, a device) cannot be reached right now: try
    again later."""


class BusUnavailable(Unavailable):
    """The bus cannot accept a message right now."""


class StoreUnavailable(Unavailable):
    """The store cannot be reached right now."""


class DeviceUnavailable(Unavailable):
    """A device did not answer in time, or answered something that is not a reply."""


class DeviceRefused(QrtError):
    """A device answered with a failure reply; the message is its `error_msg`."""


class MalformedMessage(QrtError):
    """A bus message that can never be handled (it goes to the dead letters)."""


class NotRunnable(QrtError):
    """A job cannot run where it was sent; the message says why."""


class ProgramNotRunnable(NotRunnable):
    """The assignment's program cannot be run on this executor."""


class SandboxUnavailable(NotRunnable):
    """The one-shot runner cannot run programs at all (no bubblewrap, no cluster)."""


class ZygoteGone(NotRunnable):
    """The zygote process ended; no job process can be forked until a new one started."""


class ParamsUndecodable(NotRunnable):
    """A job's params cannot be decoded into its program's input (RuntimeDecoder, PlanQK's
    `data` and `params`); the message says why, briefly."""


class SimulationFailed(QrtError):
    """A simulator could not run a job's circuits; the message gives its reason, and a
    MemoryError cause says an allocation failed (`qrt_common.simulation`)."""


class ResultRefused(QrtError, ValueError):
    """A result or an interim result that qrt will not keep: not strict JSON (NaN, Infinity) or
    over its size limit; the message says where and why (`qrt_common.results`)."""


class ConfigurationError(QrtError):
    """The configuration cannot work (an unknown store URL, a missing setting); says why."""


class StoreSetupError(ConfigurationError):
    """The store cannot be used as configured: an unknown URL, or a schema newer than this qrt."""


class DeviceConfigError(ConfigurationError):
    """A device configuration that cannot be used; says which key is wrong and why."""
