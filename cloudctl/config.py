"""The config file (TOML) and the effective settings of one cloudctl invocation.

Where things come from, first match wins: the store from `--db`, `CLOUDCTL_DB`, the config's
`[store] db`, else the per-user data dir; the config from `CLOUDCTL_CONFIG`, else
`~/.config/cloudctl/config.toml` (a missing file means all defaults). The environment is
passed in as a mapping, never read here from globals.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudctl.errors import InvalidInput
from cloudctl.limits import MAX_DURATION_S, shown
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.timefmt import parse_duration

POLICY_KEYS = {"preemption": "preemption_policy", "host-score": "host_score_policy",
               "host-filter": "host_filter_policy", "admission": "admission_policy"}
ENACTMENT_DEFAULTS: dict[str, Any] = {"max-attempts": 5, "retry-backoff": 30,
                                      "shutdown-grace": 30}
# The numbers of [scheduler] (and `simulate`'s flags of the same names): lowest, highest,
# whole numbers only. Outside them a rate, time or factor is a typo that would break every
# later tick or request (a NaN rate makes every suspend time NaN).
SCHEDULER_NUMBERS: dict[str, tuple[float, float, bool]] = {
    "suspend-rate": (0.001, 1_000_000_000, False),  # MiB/s
    "resume-rate": (0.001, 1_000_000_000, False),
    "bandwidth": (0.001, 1_000_000_000, False),  # Mbit/s
    "threshold-factor": (0, 1_000_000, False),
    "override-suspend-time": (0, MAX_DURATION_S, True),  # s
    "override-resume-time": (0, MAX_DURATION_S, True),
    "enactment-overhead": (0, MAX_DURATION_S, True),
    "shutdown-time": (0, MAX_DURATION_S, True),
}
MAX_ATTEMPTS = 100
MAX_WAIT_S = 86400  # enactment's retry-backoff and shutdown-grace: at most a day
MAX_PRICE_USD = 1_000_000  # per instance-hour

DEFAULT_CONFIG = """\
# cloudctl configuration (TOML). Every key is optional; the values shown are the defaults.
# `cloudctl config show` prints the effective configuration.

[store]
# db = "{db}"          # the SQLite state store (--db and CLOUDCTL_DB win over this)
# state-dir = "{state_dir}"   # node files, suspended VM memory images

[scheduler]
# The same names as `cloudctl simulate`'s flags.
# backfilling = "easy"           # off | easy | conservative | N
# suspension = "all"             # none | all: may best-effort leases be suspended
# suspend-rate = 32.0            # MiB/s
# resume-rate = 32.0             # MiB/s
# override-suspend-time = 10     # s, instead of memory / rate
# override-resume-time = 10      # s
# suspend-exclusion = "local"    # local | global
# enactment-overhead = 0         # s per command per VM
# shutdown-time = 0              # s
# migration = "no"               # yes: cold-migrate suspended leases to other hosts
# threshold-factor = 1.0

[policies]
# preemption = "ar-preempts-be"  # ar-preempts-be | no-preemption | oldest-first | plug-ins
# host-score = "greedy"          # greedy | pack
# host-filter = "enabled"
# admission = "accept-all"       # accept-all | fits-cluster

[drivers]
# default = "test"               # the driver `host add` uses without --driver

[clouds.ec2]
# Prices (USD per hour) of the instance types a cloud named ec2 may launch, read when it is
# added ('cloudctl cloud add ec2 ...'); without this table a built-in on-demand price list
# for us-east-1 is used. Sizes come from the provider.
# prices = {{ "t3.micro" = 0.0104, "t3.small" = 0.0208, "m5.large" = 0.096 }}

[enactment]
# max-attempts = 5               # driver failures before a lease is failed
# retry-backoff = "30s"          # first retry delay; doubles each time
# shutdown-grace = "30s"         # ACPI shutdown, then destroy
"""


@dataclass(frozen=True)
class Settings:
    db: Path
    state_dir: Path
    config_path: Path
    config_exists: bool
    scheduler: SchedulerConfig
    default_driver: str = "test"
    drivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_attempts: int = 5
    retry_backoff: int = 30
    shutdown_grace: int = 30
    clouds: dict[str, dict[str, Any]] = field(default_factory=dict)  # [clouds.NAME] prices

    def as_dict(self) -> dict[str, Any]:
        scheduler = self.scheduler.as_dict()
        policies = {key: scheduler.pop(f"{key}-policy") for key in POLICY_KEYS}
        return {
            "config": str(self.config_path) + ("" if self.config_exists else " (not found)"),
            "store": {"db": str(self.db), "state-dir": str(self.state_dir)},
            "scheduler": scheduler,
            "policies": policies,
            "drivers": {"default": self.default_driver, **self.drivers},
            "enactment": {"max-attempts": self.max_attempts,
                          "retry-backoff": self.retry_backoff,
                          "shutdown-grace": self.shutdown_grace},
        }


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("CLOUDCTL_CONFIG"):
        return Path(env["CLOUDCTL_CONFIG"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")) / ".config")
    return (base / "cloudctl" / "config.toml").expanduser()


def default_db(env: Mapping[str, str]) -> Path:
    base = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME", "~")) / ".local" / "share")
    return (base / "cloudctl" / "state.db").expanduser()


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; any problem reading it is one line of InvalidInput."""
    if sys.version_info >= (3, 11):  # imported here: most commands find no file to read
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: {error}") from None
    except OSError as error:
        raise InvalidInput(f"{path}: {error.strerror}") from None


def load_settings(env: Mapping[str, str], db_option: str | None = None) -> Settings:
    path = config_path(env)
    data: dict[str, Any] = {}
    if path.exists():
        data = read_toml(path)
    unknown = set(data) - {"store", "scheduler", "policies", "drivers", "enactment", "clouds"}
    if unknown:
        raise InvalidInput(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    store = _table(data, "store", path)
    _only(store, {"db", "state-dir"}, "store", path)
    # Checked even when --db or CLOUDCTL_DB wins: the file must hold up for every command.
    configured = _absolute(store["db"], "store.db", path) if store.get("db", "") != "" \
        else None
    if db_option:
        db = Path(db_option)
    elif env.get("CLOUDCTL_DB"):
        db = Path(env["CLOUDCTL_DB"])
    elif configured is not None:
        db = configured
    else:
        db = default_db(env)
    db = db.expanduser().absolute()
    state_dir = _absolute(store["state-dir"], "store.state-dir", path) \
        if store.get("state-dir", "") != "" else db.with_suffix(".d")

    scheduler = _scheduler_config(_table(data, "scheduler", path),
                                  _table(data, "policies", path), path)
    drivers = _table(data, "drivers", path)
    default_driver = str(drivers.get("default", "test"))
    driver_tables = {k: dict(v) for k, v in drivers.items() if isinstance(v, dict)}
    enactment = {**ENACTMENT_DEFAULTS, **_table(data, "enactment", path)}
    _only(enactment, set(ENACTMENT_DEFAULTS), "enactment", path)
    try:
        attempts = int(_finite(enactment["max-attempts"], "enactment.max-attempts", path))
        backoff = _seconds(enactment["retry-backoff"], "enactment.retry-backoff", path)
        grace = _seconds(enactment["shutdown-grace"], "enactment.shutdown-grace", path)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{path}: [enactment]: {error}") from None
    if attempts < 1:
        raise InvalidInput(f"{path}: enactment.max-attempts must be at least 1")
    if attempts > MAX_ATTEMPTS:
        raise InvalidInput(f"{path}: enactment.max-attempts: at most {MAX_ATTEMPTS}, "
                           f"got {shown(attempts)}")
    clouds = _table(data, "clouds", path)
    for cloud_name, table in clouds.items():
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: [clouds.{cloud_name}] must be a table")
        _only(table, {"prices"}, f"clouds.{cloud_name}", path)
        if not isinstance(table.get("prices", {}), dict):
            raise InvalidInput(f"{path}: clouds.{cloud_name}.prices must be a table of "
                               "instance type = USD per hour")
        for kind, price in table.get("prices", {}).items():
            problem = number_problem(price, 0, MAX_PRICE_USD)
            if problem:
                raise InvalidInput(f"{path}: clouds.{cloud_name}.prices.{kind}: {problem}")
    return Settings(db=db, state_dir=state_dir.absolute(), config_path=path, clouds=clouds,
                    config_exists=path.exists(), scheduler=scheduler,
                    default_driver=default_driver, drivers=driver_tables,
                    max_attempts=attempts, retry_backoff=backoff, shutdown_grace=grace)


def _seconds(value: Any, option: str, path: Path) -> int:
    """Whole seconds, or a duration like "30s", between 0 and a day."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        try:
            seconds = parse_duration(str(value), option=option)
        except InvalidInput as error:
            raise InvalidInput(f"{path}: {error}") from None
    if not 0 <= seconds <= MAX_WAIT_S:
        raise InvalidInput(f"{path}: {option}: must be between 0 and {MAX_WAIT_S:,} s (a "
                           f"day), got {shown(seconds)}")
    return seconds


def _finite(value: Any, option: str, path: Path) -> Any:
    """`value`, unless it is a float that is not finite (int() of inf would not say which
    key it came from)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{path}: {option}: must be a finite number, got {value}")
    return value


def _absolute(value: Any, option: str, path: Path) -> Path:
    """A path of the config file: a string without NUL, absolute once ~ is expanded (a
    relative one would depend on the directory a command happens to run in)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: {option}: must be a path (a string), got {repr(value)[:40]}")
    if "\0" in value:
        raise InvalidInput(f"{path}: {option}: must be a path without NUL characters")
    try:
        found = Path(value).expanduser()
    except RuntimeError as error:  # ~user of a user that does not exist
        raise InvalidInput(f"{path}: {option}: {error}") from None
    if not found.is_absolute():
        raise InvalidInput(f"{path}: {option}: must be an absolute path, got {value!r}")
    return found


def number_problem(value: Any, low: float, high: float, whole: bool = False) -> str | None:
    """Why `value` is not a finite number (a whole one if `whole`) in [low, high], or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {str(value)[:40]!r}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if whole and not float(value).is_integer():
        return f"must be a whole number, got {value}"
    if not low <= value <= high:
        return f"must be between {shown(low)} and {shown(high)}, got {shown(value)}"
    return None


def check_scheduler_numbers(values: Mapping[str, Any], label: Callable[[str], str]) -> None:
    """Refuse a [scheduler] number (or a `simulate` flag) that is not finite or in range;
    `label(key)` names it in the error."""
    for key, (low, high, whole) in SCHEDULER_NUMBERS.items():
        value = values.get(key)
        if value is not None and (problem := number_problem(value, low, high, whole)):
            raise InvalidInput(f"{label(key)}: {problem}")


def _table(data: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: [{name}] must be a table")
    return dict(value)


def _only(table: Mapping[str, Any], known: set[str], name: str, path: Path) -> None:
    unknown = set(table) - known
    if unknown:
        raise InvalidInput(f"{path}: [{name}] has unknown key(s) {', '.join(sorted(unknown))}"
                           f" (known: {', '.join(sorted(known))})")


def _scheduler_config(scheduler: dict[str, Any], policies: dict[str, Any],
                      path: Path) -> SchedulerConfig:
    _only(policies, set(POLICY_KEYS), "policies", path)
    check_scheduler_numbers(scheduler, lambda key: f"{path}: scheduler.{key}")
    options: dict[str, Any] = {}
    for key, value in scheduler.items():
        if key == "migration" and isinstance(value, str):
            if value not in ("yes", "no"):
                raise InvalidInput(f"{path}: scheduler.migration must be yes or no")
            value = value == "yes"
        options[key] = value
    for key, value in policies.items():
        options[POLICY_KEYS[key]] = value
    try:
        config = SchedulerConfig().with_options(**options)
    except (InvalidInput, TypeError) as error:
        raise InvalidInput(f"{path}: [scheduler]: {error}") from None
    from cloudctl.policies.registry import BUILTIN, available

    for key, attr in POLICY_KEYS.items():
        name = getattr(config, attr)
        kind = attr.removesuffix("_policy")
        if name in BUILTIN[kind]:
            continue  # no need to scan installed packages' entry points
        known = available(kind)
        if name not in known:
            raise InvalidInput(f"{path}: unknown {key} policy {name!r} "
                               f"(known: {', '.join(known)})")
    return config
