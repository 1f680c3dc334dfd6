"""The config file (TOML) and the effective settings of one cloudctl invocation; burst
provider files.

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
from typing import TYPE_CHECKING, Any

from cloudctl.errors import InvalidInput
from cloudctl.limits import MAX_DURATION_S, shown
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.timefmt import parse_duration

if TYPE_CHECKING:  # the scheduler's burst module loads only when a provider is read
    from cloudctl.scheduler.burst import InstanceType, Provider

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
    from cloudctl import plugins

    for key, attr in POLICY_KEYS.items():
        name = getattr(config, attr)
        group = plugins.policy_group(attr.removesuffix("_policy"))
        if not plugins.is_registered(group, name):
            raise InvalidInput(f"{path}: unknown {key} policy {name!r} "
                               f"(known: {', '.join(plugins.available(group))})")
    return config


# -- burst provider files (simulate --burst-provider) and cloud options -----------------------

def parse_duration_field(value: Any, what: str) -> int:
    """Seconds from a number or a duration string ("90s", "1h")."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a duration, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidInput(f"{what} must not be negative")
        return int(value)
    return parse_duration(str(value), option=what)


def catalogue_from(data: Mapping[str, Any], where: str,
                   sizes: Mapping[str, tuple[int, int]] | None = None
                   ) -> tuple[InstanceType, ...]:
    """Instance types from a provider table: `[prices]` (name = USD per hour) with sizes from
    `[[instance_types]]` entries (name, vcpus, memory_mib[, price_per_hour]) or `sizes`."""
    from cloudctl.scheduler.burst import InstanceType

    prices = data.get("prices", {})
    if not isinstance(prices, Mapping):
        raise InvalidInput(f"{where}: [prices] must be a table of instance type = USD/hour")
    listed: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data.get("instance_types", [])):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise InvalidInput(f"{where}: instance_types[{i}] needs at least a name")
        listed[str(entry["name"])] = dict(entry)
    out = []
    for name in sorted(set(prices) | set(listed)):
        entry = listed.get(name, {})
        price = entry.get("price_per_hour", prices.get(name))
        size = sizes.get(name) if sizes else None
        vcpus = entry.get("vcpus", size[0] if size else None)
        memory = entry.get("memory_mib", size[1] if size else None)
        if price is None:
            raise InvalidInput(f"{where}: instance type {name} has no price")
        if vcpus is None or memory is None:
            raise InvalidInput(f"{where}: instance type {name} has no size (vcpus, memory_mib)")
        try:
            kind = InstanceType(name, int(vcpus), int(memory), float(price))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: instance type {name}: {exc}") from exc
        if kind.vcpus <= 0 or kind.memory_mib <= 0 or kind.price_per_hour < 0:
            raise InvalidInput(f"{where}: instance type {name} needs positive vcpus and "
                               f"memory_mib and a price of at least 0")
        out.append(kind)
    if not out:
        raise InvalidInput(f"{where}: no instance types (add a [prices] table)")
    return tuple(out)


_PROVIDER_KEYS = {"name", "type", "region", "endpoint", "profile", "budget_per_month",
                  "boot_time", "max_wait", "max_preemptions", "burst_im",
                  "max_instances", "min_billed", "partial", "policy", "prices",
                  "instance_types", "ami", "images"}


def provider_from(data: Mapping[str, Any], where: str,
                  sizes: Mapping[str, tuple[int, int]] | None = None) -> Provider:
    from cloudctl.scheduler.burst import Provider

    unknown = sorted(set(data) - _PROVIDER_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(_PROVIDER_KEYS))})")
    name = str(data.get("name", "")).strip()
    if not name:
        raise InvalidInput(f"{where}: a provider needs a name")
    budget = data.get("budget_per_month")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or budget < 0):
        raise InvalidInput(f"{where}: budget_per_month must be a number of USD >= 0")
    wait = data.get("max_wait")
    pre = data.get("max_preemptions")
    if pre is not None and (isinstance(pre, bool) or not isinstance(pre, int) or pre < 0):
        raise InvalidInput(f"{where}: max_preemptions must be a whole number >= 0")
    limit = data.get("max_instances")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InvalidInput(f"{where}: max_instances must be a whole number >= 1")
    images = data.get("images", {})
    if not isinstance(images, Mapping):
        raise InvalidInput(f"{where}: [images] must map local image names to AMI ids")
    return Provider(
        name=name, catalogue=catalogue_from(data, where, sizes),
        budget_per_month=None if budget is None else float(budget),
        boot_time=parse_duration_field(data.get("boot_time", 0), f"{where}: boot_time"),
        max_wait=None if wait is None else parse_duration_field(wait, f"{where}: max_wait"),
        max_preemptions=pre, burst_im=_flag(data.get("burst_im", True), f"{where}: burst_im"),
        max_instances=limit, partial=_flag(data.get("partial", False), f"{where}: partial"),
        min_billed_s=parse_duration_field(data.get("min_billed", 60), f"{where}: min_billed"),
        policy=str(data.get("policy", "cheapest-fit")), type=str(data.get("type", "ec2")),
        region=str(data.get("region", "")), endpoint=data.get("endpoint"),
        profile=data.get("profile"), ami=data.get("ami"),
        images={str(k): str(v) for k, v in images.items()})


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, got {value!r}")
    return value


def load_provider_file(path: str | Path) -> Provider:
    """A provider from a TOML file (`simulate --burst-provider FILE.toml`)."""
    return provider_from(read_toml(Path(path)), str(path))
