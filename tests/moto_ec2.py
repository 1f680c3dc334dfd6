"""Fixtures for tests against a real EC2 endpoint: moto's server on 127.0.0.1, as a child process.

`moto_server` (session) starts it once; `ec2_env` (per test) resets it and points the standard
AWS credential chain at throwaway test credentials; `inject` makes chosen calls fail with
chosen AWS error codes (capacity, limits, throttling, expired credentials) that moto cannot
produce, through `EC2Driver.client_hooks`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cloudctl.drivers.ec2 import EC2Driver

REGION = "us-east-1"
START_TIMEOUT = 20.0


@dataclass
class MotoServer:
    url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()


@dataclass
class EC2Env:
    url: str
    region: str
    ami: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as reply:
            return bool(reply.status < 500)
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    try:
        import moto.server  # noqa: F401  (only to fail early, and clearly, when it is absent)
    except ImportError as error:
        pytest.fail(f"moto is not installed ({error}); install the test extra: "
                    "pip install -e '.[test]'")
    command = Path(sys.executable).parent / "moto_server"
    if not command.exists():
        pytest.fail(f"{command} not found: moto's console script is missing from the venv")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {**os.environ, "MOTO_ENABLE_AMI_VALIDATION": "1",
           "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    with log.open("wb") as output:
        process = subprocess.Popen([str(command), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server on {url} did not answer within {START_TIMEOUT:g} s "
                            f"(exit status {process.poll()}):\n{log.read_text()[-4000:]}")
            time.sleep(0.05)
        yield MotoServer(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def ec2_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[EC2Env]:
    moto_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    # Without credentials the chain would next ask the instance metadata service: never.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Never the developer's own ~/.aws: files that do not exist.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    yield EC2Env(url=moto_server.url, region=REGION, ami=_default_ami(moto_server.url))


_amis: dict[str, str] = {}


def _default_ami(url: str) -> str:
    """The lowest-numbered Amazon-owned AMI among moto's defaults (the same after every reset)."""
    if url not in _amis:
        driver = EC2Driver(region=REGION, endpoint_url=url)
        try:
            images = driver.client.describe_images(Owners=["amazon"])["Images"]
        finally:
            driver.close()
        if not images:
            pytest.fail("moto has no Amazon-owned default AMIs")
        _amis[url] = min(image["ImageId"] for image in images)
    return _amis[url]


@dataclass
class Injection:
    operation: str
    codes: list[str]
    message: str
    calls: int = 0

    def __call__(self, **_: Any) -> Any:
        """A botocore before-call handler: a reply of our own stops the request there."""
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        self.calls += 1
        if not self.codes:
            return None
        code = self.codes.pop(0)
        status = 503 if code in ("RequestLimitExceeded", "ServiceUnavailable") else 400
        parsed = {"Error": {"Code": code, "Message": self.message},
                  "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("http://127.0.0.1/injected", status, HTTPHeaders(), None), parsed


@contextmanager
def inject(operation: str, codes: list[str], message: str = "injected") -> Iterator[Injection]:
    """Make the next len(codes) calls of `operation` (e.g. "RunInstances") fail with these AWS
    error codes, in order; later calls reach the server. `.calls` counts every call seen."""
    injection = Injection(operation, list(codes), message)
    hook = (f"before-call.ec2.{operation}", injection)
    EC2Driver.client_hooks.append(hook)
    try:
        yield injection
    finally:
        EC2Driver.client_hooks.remove(hook)
