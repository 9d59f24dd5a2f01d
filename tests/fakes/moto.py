"""moto in server mode for tests that want real boto3 calls over HTTP (boto3 finds it through AWS_ENDPOINT_URL).

No pytest here: :func:`moto_server` is a context manager yielding the server's URL, :func:`moto_env` the variables
a client needs to reach it. moto keeps its state per process, so tests sharing a server use unique bucket names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import requests

# An absolute import: this file is tests.fakes.moto, the library is the top-level moto.
from moto.server import ThreadedMotoServer

REGION = "ap-south-1"

# Variables that would send boto3 elsewhere or change who it authenticates as.
INTERFERING_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
)


def start_moto_server(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start moto on 127.0.0.1 (port 0: any free port); returns the server (call ``stop()``) and its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@contextlib.contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    server, url = start_moto_server(port)
    try:
        yield url
    finally:
        server.stop()


def moto_env(url: str, region: str = REGION) -> dict[str, str]:
    """Environment for a boto3 client talking to the moto server at `url` with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # A developer's ~/.aws files must not leak profiles or settings into tests.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def aws_env(monkeypatch, url: str, region: str = REGION) -> None:
    """Point this test's boto3 clients at the moto server at `url` (pytest's monkeypatch undoes it)."""
    for name in INTERFERING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_env(url, region).items():
        monkeypatch.setenv(name, value)


def reset(url: str) -> None:
    """Forget every resource (between tests sharing one server)."""
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
