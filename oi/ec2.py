"""EC2 helpers: the instance metadata service (IMDSv2) and stopping this instance.

IMDSv2 needs a session token first (``PUT /latest/api/token``); IMDSv1-style plain GETs are refused on instances
that enforce v2, which is the recommended setting, so we never fall back to v1.
"""

from __future__ import annotations

import ipaddress
import logging

import requests

log = logging.getLogger(__name__)

TOKEN_TTL_SECONDS = 300  # long enough for one script run; short so a leaked token is soon useless


class ImdsError(RuntimeError):
    """The metadata service did not answer as expected (not on EC2, no public IP, hop limit...)."""


class Imds:
    """Minimal IMDSv2 client."""

    def __init__(self, base: str = "http://169.254.169.254", session: requests.Session | None = None, timeout=2.0):
        self.base = base.rstrip("/")
        self.session = session or _direct_session()
        self.timeout = timeout
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            try:
                resp = self.session.put(
                    f"{self.base}/latest/api/token",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise ImdsError(f"instance metadata service unreachable at {self.base} ({type(exc).__name__})") from exc
            if resp.status_code != 200 or not resp.text:
                raise ImdsError(f"IMDSv2 token request failed: HTTP {resp.status_code}")
            self._token = resp.text.strip()
        return self._token

    def get(self, path: str) -> str:
        """GET ``/latest/meta-data/<path>``; ImdsError unless it answers 200."""
        url = f"{self.base}/latest/meta-data/{path.lstrip('/')}"
        try:
            resp = self.session.get(url, headers={"X-aws-ec2-metadata-token": self.token()}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ImdsError(f"instance metadata {path}: {type(exc).__name__}") from exc
        if resp.status_code == 404:
            raise ImdsError(f"instance metadata has no {path}")
        if resp.status_code != 200:
            raise ImdsError(f"instance metadata {path}: HTTP {resp.status_code}")
        return resp.text.strip()

    def public_ipv4(self) -> str:
        try:
            value = self.get("public-ipv4")
        except ImdsError as exc:
            raise ImdsError(f"{exc} (does the instance have a public IPv4 address?)") from exc
        return validate_ipv4(value)

    def instance_id(self) -> str:
        return self.get("instance-id")


def _direct_session() -> requests.Session:
    # The link-local metadata address must never go through an HTTP(S)_PROXY from the environment.
    session = requests.Session()
    session.trust_env = False
    return session


def validate_ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def stop_instance(ec2, instance_id: str, dry_run: bool = False) -> str:
    """Stop `instance_id`; returns the state EC2 reports (e.g. "stopping"), or "dry-run"."""
    if dry_run:
        log.info("ec2: would stop instance %s (dry run)", instance_id)
        return "dry-run"
    resp = ec2.stop_instances(InstanceIds=[instance_id])
    state = resp["StoppingInstances"][0]["CurrentState"]["Name"]
    log.info("ec2: stop requested for %s (now %s)", instance_id, state)
    return state
