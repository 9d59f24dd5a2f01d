"""moto in server mode, so real boto3 clients (honouring AWS_ENDPOINT_URL) talk to it over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests
from moto.server import ThreadedMotoServer

REGION = "ap-south-1"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset(endpoint: str) -> None:
    """Forget every resource (between tests sharing one server)."""
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()


def aws_env(monkeypatch, endpoint: str, region: str = REGION) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
