"""The documented bounds of what cloudctl accepts (README, "Limits"), checked before any work.

Far beyond any real cloud or trace, far below what would overflow SQLite's 64-bit integers,
Python's dates or the memory of the machine: a value outside them is a typo or an attack, and
is refused with exit 2 naming the option (or the file and line) instead of being stored.
"""

from __future__ import annotations

from cloudctl.errors import InvalidInput

MAX_DURATION_S = 3650 * 86400  # a lease lasts at most 10 years
MIN_TIME = 0  # 1970-01-01T00:00:00Z
MAX_TIME = 253_370_764_800  # 9999-01-01T00:00:00Z: every lease ends by then
MAX_NODES = 200_000  # VMs of one lease; hosts of a simulated cluster
MAX_CPUS = 1 << 20  # CPUs of one VM or one host
MAX_MEMORY_MIB = 1 << 32  # MiB of one VM or one host (4 PiB)
MAX_DISK_GIB = 1 << 22  # GiB of one host's disk (4 PiB)
MAX_DISK_MIB = MAX_DISK_GIB * 1024  # MiB of a VM's disk or an image in a trace
MAX_ID = (1 << 63) - 1  # SQLite's largest integer: no lease, VM or job id is larger


def check_range(value: int | float, low: int | float, high: int | float, what: str,
                unit: str = "") -> None:
    """InvalidInput naming `what` unless low <= value <= high (NaN is never in range)."""
    if not low <= value <= high:
        raise InvalidInput(f"{what}: must be between {low:,}{unit} and {high:,}{unit}, "
                           f"got {shown(value)}{unit}")


def shown(value: int | float) -> str:
    """A number for an error line: digits while short, else only which side it is on."""
    if -10**18 < value < 10**18:
        return f"{value:,}"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return "more than 10^18" if value > 0 else "less than -10^18"
