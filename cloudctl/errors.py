"""One exception tree; each error carries the exit code the CLI returns for it.

Exit codes (documented in the README and in `cloudctl --help`):
0 ok, 1 runtime error, 2 bad usage or invalid input, 3 not found, 4 conflict,
5 driver or backend failure, 6 the request cannot be satisfied.
"""

from __future__ import annotations


class CloudctlError(Exception):
    exit_code = 1
    kind = "error"

    def to_dict(self) -> dict[str, object]:
        return {"error": self.kind, "message": str(self), "exit_code": self.exit_code}


class InvalidInput(CloudctlError):
    """Bad usage, a malformed file, an option out of range."""

    exit_code = 2
    kind = "invalid-input"


class NotFound(CloudctlError):
    exit_code = 3
    kind = "not-found"


class Conflict(CloudctlError):
    """Invalid state transition, duplicate name, host busy."""

    exit_code = 4
    kind = "conflict"


class InvalidTransition(Conflict):
    kind = "invalid-transition"


class BackendError(CloudctlError):
    """A driver or backend (hypervisor, cloud, SSH, database) failed."""

    exit_code = 5
    kind = "backend"


class Unsatisfiable(CloudctlError):
    """An AR or IM lease that cannot be placed."""

    exit_code = 6
    kind = "unsatisfiable"


EXIT_CODES = {
    0: "ok",
    1: "runtime error",
    2: "bad usage or invalid input",
    3: "not found",
    4: "conflict (invalid state transition, duplicate name, host busy)",
    5: "driver or backend failure",
    6: "request cannot be satisfied (AR or IM lease rejected)",
    130: "interrupted",
}
