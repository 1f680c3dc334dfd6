"""Cloud bursting to EC2 (or any EC2-compatible endpoint) through boto3.

boto3 and botocore are imported only when a client is first needed, so importing this module to
read its types costs nothing. botocore's own retries are off: `EC2Driver` retries retryable
errors itself, with exponential backoff through an injectable `sleep`, so what happens on a
throttle or a capacity shortage is deterministic and testable. Every failure is a one-line
`CloudError` that says what kind of failure it was and whether trying again may help.
Credentials come only from the standard AWS chain (environment, shared files, a named profile).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, TypeVar

from cloudctl.errors import BackendError

T = TypeVar("T")

TOKEN_TAG = "cloudctl:token"
# Instances that still count as launched: a repeated launch returns these rather than a twin.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
NOT_TERMINATED = (*LIVE_STATES, "shutting-down")
ALL_STATES = (*NOT_TERMINATED, "terminated")
MAX_TYPES_PER_CALL = 100  # DescribeInstanceTypes' limit on InstanceTypes

# AWS error code -> (kind, retryable). Codes not listed are ("other", False); some families are
# matched by prefix in `classify`.
_CODES: dict[str, tuple[str, bool]] = {
    **dict.fromkeys(("InsufficientInstanceCapacity", "InsufficientCapacity",
                     "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
                     "InsufficientAddressCapacity", "Unsupported"), ("capacity", True)),
    **dict.fromkeys(("InstanceLimitExceeded", "VcpuLimitExceeded",
                     "MaxSpotInstanceCountExceeded"), ("limit", False)),
    **dict.fromkeys(("RequestLimitExceeded", "Throttling", "ThrottlingException",
                     "RequestThrottled", "RequestThrottledException",
                     "TooManyRequestsException"), ("throttle", True)),
    **dict.fromkeys(("AuthFailure", "ExpiredToken", "ExpiredTokenException", "RequestExpired",
                     "UnauthorizedOperation", "InvalidClientTokenId", "OptInRequired",
                     "SignatureDoesNotMatch", "MissingAuthenticationToken"),
                    ("credentials", False)),
    **dict.fromkeys(("InvalidInstanceType", "InvalidInstanceType.NotFound"),
                    ("instance-type", False)),
    **dict.fromkeys(("InvalidInstanceID.NotFound", "InvalidInstanceID"), ("not-found", False)),
    **dict.fromkeys(("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
                     "ServerInternal"), ("other", True)),
}
# botocore's own exceptions (raised before or instead of an AWS reply), by class name.
_LOCAL_ERRORS: dict[str, tuple[str, bool]] = {
    "NoCredentialsError": ("credentials", False),
    "PartialCredentialsError": ("credentials", False),
    "ProfileNotFound": ("credentials", False),
    "NoRegionError": ("other", False),
    "EndpointConnectionError": ("other", True),
    "ConnectTimeoutError": ("other", True),
    "ReadTimeoutError": ("other", True),
    "ConnectionClosedError": ("other", True),
}


def classify(code: str, message: str = "") -> tuple[str, bool]:
    """(kind, retryable) for an AWS error code, as `CloudError` reports it."""
    if code in _CODES:
        return _CODES[code]
    if code.startswith("InvalidAMIID"):
        return "image", False
    if code == "InvalidParameterValue" and "instance type" in message.lower():
        return "instance-type", False
    return "other", False


class CloudError(BackendError):
    """An EC2 call failed; `kind` says how (capacity, limit, throttle, credentials, image,
    instance-type, not-found, other) and `retryable` whether trying again may help."""

    def __init__(self, operation: str, code: str, message: str, *, kind: str | None = None,
                 retryable: bool | None = None) -> None:
        default_kind, default_retryable = classify(code, message)
        self.operation = operation
        self.code = code
        self.kind = default_kind if kind is None else kind
        self.retryable = default_retryable if retryable is None else retryable
        self.message = " ".join(message.split())
        super().__init__(f"{operation}: {code}: {self.message}")


@dataclass(frozen=True)
class InstanceSize:
    name: str
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class CloudInstance:
    id: str
    state: str  # EC2's state name: pending, running, stopping, stopped, shutting-down, terminated
    instance_type: str
    image_id: str
    tags: dict[str, str] = field(hash=False)
    private_ip: str | None
    public_ip: str | None
    launched_at: int | None  # unix seconds
    client_token: str

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> CloudInstance:
        tags = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
        launched = item.get("LaunchTime")
        return cls(id=item["InstanceId"], state=item.get("State", {}).get("Name", "unknown"),
                   instance_type=item.get("InstanceType", ""), image_id=item.get("ImageId", ""),
                   tags=tags, private_ip=item.get("PrivateIpAddress") or None,
                   public_ip=item.get("PublicIpAddress") or None,
                   launched_at=int(launched.timestamp()) if launched is not None else None,
                   client_token=item.get("ClientToken") or tags.get(TOKEN_TAG, ""))


def _filters(tags: dict[str, str], states: Sequence[str]) -> list[dict[str, Any]]:
    return [*({"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())),
            {"Name": "instance-state-name", "Values": list(states)}]


class EC2Driver:
    """One region of EC2 (or an EC2-compatible endpoint such as moto), for cloud bursting."""

    stop_start = True  # stopped instances keep their disk, so suspend maps to stop/start
    poll_interval = 2.0  # seconds between describe calls in `wait_running`
    # (botocore event name, handler) registered on every client this class creates: the
    # supported way for tests to inject faults in-process, against a real endpoint.
    client_hooks: ClassVar[list[tuple[str, Callable[..., Any]]]] = []

    def __init__(self, *, region: str, endpoint_url: str | None = None,
                 profile: str | None = None, attempts: int = 4, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._session: Any = None
        self._client: Any = None

    # -- the client and one call --------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._call("CreateClient", self._make_client)
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        self._session = session = boto3.session.Session(profile_name=self.profile)
        config = Config(region_name=self.region, connect_timeout=10, read_timeout=30,
                        retries={"max_attempts": 1, "mode": "standard"})
        client = session.client("ec2", endpoint_url=self.endpoint_url, config=config)
        for event, handler in self.client_hooks:
            client.meta.events.register(event, handler)
        return client

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run `fn` once; any botocore failure becomes a one-line `CloudError`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as error:
            info = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = str(info.get("Code") or f"HTTP{status}")
            kind, retryable = classify(code, str(info.get("Message", "")))
            if kind == "other" and isinstance(status, int) and status >= 500:
                retryable = True
            raise CloudError(operation, code, self._scrub(str(info.get("Message", ""))),
                             kind=kind, retryable=retryable) from None
        except BotoCoreError as error:
            name = type(error).__name__
            kind, retryable = _LOCAL_ERRORS.get(name, ("other", False))
            raise CloudError(operation, name, self._scrub(str(error)), kind=kind,
                             retryable=retryable) from None

    def _scrub(self, message: str) -> str:
        """The message with our secret key and session token masked, should a service echo one."""
        try:
            credentials = self._session.get_credentials() if self._session else None
            secrets = [credentials.secret_key, credentials.token] if credentials else []
        except Exception:  # no credentials to find: nothing to mask, and never a new failure
            secrets = []
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        return message

    def _retrying(self, operation: str, fn: Callable[[], T]) -> T:
        """Run `fn` up to `attempts` times, sleeping backoff * 2**n after the n-th retryable
        failure; a non-retryable one is raised at once."""
        for attempt in range(self.attempts):
            try:
                return self._call(operation, fn)
            except CloudError as error:
                if not error.retryable or attempt + 1 == self.attempts:
                    raise
                self.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def _pages(self, operation: str, method: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paginated call, in one attempt."""
        paginator = self.client.get_paginator(method)
        return self._call(operation, lambda: [
            item for page in paginator.paginate(**params) for item in page.get(key, [])])

    # -- the driver -----------------------------------------------------------------------

    def probe(self) -> None:
        """One cheap call, not retried: fails fast on bad credentials or a wrong endpoint."""
        self._call("DescribeAvailabilityZones",
                   lambda: self.client.describe_availability_zones())

    def instance_sizes(self, names: Iterable[str]) -> dict[str, InstanceSize]:
        wanted = sorted(set(names))
        sizes: dict[str, InstanceSize] = {}
        for start in range(0, len(wanted), MAX_TYPES_PER_CALL):
            batch = wanted[start:start + MAX_TYPES_PER_CALL]
            items = self._retrying("DescribeInstanceTypes", partial(
                self._pages, "DescribeInstanceTypes", "describe_instance_types",
                "InstanceTypes", InstanceTypes=batch))
            for item in items:
                name = item["InstanceType"]
                sizes[name] = InstanceSize(name, int(item["VCpuInfo"]["DefaultVCpus"]),
                                           int(item["MemoryInfo"]["SizeInMiB"]))
        missing = [name for name in wanted if name not in sizes]
        if missing:
            raise CloudError("DescribeInstanceTypes", "InvalidInstanceType",
                             f"unknown instance type(s): {', '.join(missing)}")
        return sizes

    def check_image(self, image_id: str) -> None:
        images = self._retrying("DescribeImages",
                                lambda: self.client.describe_images(ImageIds=[image_id]))
        found = [i for i in images.get("Images", []) if i.get("ImageId") == image_id]
        if not found:
            raise CloudError("DescribeImages", "InvalidAMIID.NotFound",
                             f"image {image_id} does not exist")
        state = found[0].get("State", "available")
        if state != "available":
            raise CloudError("DescribeImages", "InvalidAMIID.Unavailable",
                             f"image {image_id} is {state}", kind="image", retryable=False)

    def launch(self, *, image_id: str, instance_type: str, client_token: str,
               tags: dict[str, str], count: int = 1) -> list[CloudInstance]:
        """Start `count` instances, at most once per `client_token`.

        Before every attempt the instances already carrying the token are looked up (by tag,
        since moto ignores ClientToken), so a retry after a lost reply, or a launch repeated
        after a crash, returns the instances that exist instead of making twins.
        """
        all_tags = {**tags, TOKEN_TAG: client_token}
        spec = [{"ResourceType": "instance",
                 "Tags": [{"Key": k, "Value": v} for k, v in sorted(all_tags.items())]}]

        def attempt() -> list[CloudInstance]:
            existing = self._instances(Filters=_filters({TOKEN_TAG: client_token}, LIVE_STATES))
            if existing:
                return existing
            reply = self.client.run_instances(
                ImageId=image_id, InstanceType=instance_type, MinCount=count, MaxCount=count,
                ClientToken=client_token, TagSpecifications=spec)
            return sorted((CloudInstance.from_api(i) for i in reply.get("Instances", [])),
                          key=lambda i: i.id)

        return self._retrying("RunInstances", attempt)

    def wait_running(self, ids: Sequence[str], timeout: float = 120) -> list[CloudInstance]:
        """Poll until every instance runs; time spent is both the clock's and `sleep`'s."""
        started, slept = time.monotonic(), 0.0
        while True:
            try:
                instances = self._describe(ids)
            except CloudError as error:
                if error.kind != "not-found":  # new ids may not be visible yet
                    raise
                instances = []
            gone = [i.id for i in instances if i.state in ("shutting-down", "terminated")]
            if gone:
                raise CloudError("DescribeInstances", "InstanceTerminated",
                                 f"terminated while starting: {', '.join(gone)}",
                                 kind="other", retryable=False)
            if len(instances) == len(set(ids)) and all(i.state == "running" for i in instances):
                return instances
            if max(time.monotonic() - started, slept) >= timeout:
                waiting = sorted(set(ids) - {i.id for i in instances if i.state == "running"})
                raise CloudError("DescribeInstances", "WaitTimeout",
                                 f"not running after {timeout:g} s: {', '.join(waiting)}",
                                 kind="other", retryable=False)
            self.sleep(self.poll_interval)
            slept += self.poll_interval

    def _describe(self, ids: Sequence[str]) -> list[CloudInstance]:
        if not ids:
            return []
        return self._retrying("DescribeInstances", lambda: self._instances(InstanceIds=list(ids)))

    def find(self, *, tags: dict[str, str] | None = None, client_token: str | None = None,
             include_terminated: bool = False) -> list[CloudInstance]:
        """Instances carrying all of `tags` (and launched with `client_token`), by id."""
        wanted = dict(tags or {})
        if client_token is not None:
            # Our own tag rather than the client-token filter, which moto does not support.
            wanted[TOKEN_TAG] = client_token
        states = ALL_STATES if include_terminated else NOT_TERMINATED
        return self._retrying("DescribeInstances",
                              lambda: self._instances(Filters=_filters(wanted, states)))

    def _instances(self, **params: Any) -> list[CloudInstance]:
        """describe_instances, every page, in one attempt; sorted by id."""
        reservations = self._pages("DescribeInstances", "describe_instances", "Reservations",
                                   **params)
        return sorted((CloudInstance.from_api(i) for r in reservations for i in r["Instances"]),
                      key=lambda i: i.id)

    def terminate(self, ids: Sequence[str]) -> None:
        """Terminate; ids that are unknown or already terminated are fine."""
        self._each("TerminateInstances", "terminate_instances", ids, missing_ok=True)

    def stop(self, ids: Sequence[str]) -> None:
        """Stop (keeping the disk); stopping a stopped instance is fine."""
        self._each("StopInstances", "stop_instances", ids, missing_ok=False)

    def start(self, ids: Sequence[str]) -> None:
        """Start stopped instances; starting a running one is fine."""
        self._each("StartInstances", "start_instances", ids, missing_ok=False)

    def _each(self, operation: str, method: str, ids: Sequence[str], *,
              missing_ok: bool) -> None:
        if not ids:
            return
        call = getattr(self.client, method)
        try:
            self._retrying(operation, lambda: call(InstanceIds=list(ids)))
        except CloudError as error:
            # One unknown id fails the whole request: do the rest one by one.
            if error.kind != "not-found" or not missing_ok:
                raise
            for instance_id in ids:
                try:
                    self._retrying(operation, partial(call, InstanceIds=[instance_id]))
                except CloudError as single:
                    if single.kind != "not-found":
                        raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
