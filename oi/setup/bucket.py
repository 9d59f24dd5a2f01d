"""One-time set-up of the snapshot bucket: an S3 website that only answers requests whose ``Referer`` equals
S3_REFERER_SECRET (a Cloudflare Transform Rule, :mod:`oi.setup.rules`, adds it). ``python -m oi setup s3``.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from oi.s3 import ERROR_KEY, INDEX_KEY, is_not_found, website_endpoint

log = logging.getLogger(__name__)

MASK = "***"
MIN_SECRET_LENGTH = 16


def bucket_policy(bucket: str, referer_secret: str) -> dict[str, Any]:
    """Public read, but only for requests whose Referer is the shared secret Cloudflare adds (a shared secret
    keeps casual direct hits off the bucket; it is not access control)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GetObjectViaCloudflareOnly",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"aws:Referer": referer_secret}},
            }
        ],
    }


def source_ip_policy(bucket: str, ranges: list[str]) -> dict[str, Any]:
    """Public read, but only from `ranges` (Cloudflare's published address ranges): real access control at the
    network level, unlike the Referer secret; the ranges change now and then, so re-run with a fresh list."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GetObjectFromCloudflareAddressesOnly",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"IpAddress": {"aws:SourceIp": ranges}},
            }
        ],
    }


def read_ranges(path: Path) -> list[str]:
    """CIDR ranges from `path`, one a line (``https://www.cloudflare.com/ips-v4`` and ``ips-v6`` concatenated);
    blank lines and ``#`` comments ignored. ValueError naming the line for anything that is not a network."""
    ranges: list[str] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise ValueError(f"{path}:{n}: {text!r} is not an IPv4/IPv6 network (CIDR)") from None
        if network.prefixlen == 0:  # 0.0.0.0/0 would make the lock a no-op
            raise ValueError(f"{path}:{n}: {text!r} would allow every address")
        ranges.append(str(network))
    if not ranges:
        raise ValueError(f"{path}: no address ranges in it")
    return sorted(set(ranges), key=lambda r: (ipaddress.ip_network(r).version, ipaddress.ip_network(r)))


def masked_policy(policy: dict[str, Any]) -> dict[str, Any]:
    masked = copy.deepcopy(policy)
    for statement in masked.get("Statement", []):
        for condition in statement.get("Condition", {}).values():
            if "aws:Referer" in condition:
                condition["aws:Referer"] = MASK
    return masked


WEBSITE_CONFIGURATION = {"IndexDocument": {"Suffix": INDEX_KEY}, "ErrorDocument": {"Key": ERROR_KEY}}
# The Referer policy is "public" to AWS, so BlockPublicPolicy/RestrictPublicBuckets must be off or S3 refuses or
# ignores it. ACLs stay blocked: nothing here uses them, and a public ACL would bypass the Referer check.
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": False,
    "RestrictPublicBuckets": False,
}


# Retention of past sessions (OI_SNAPSHOT_KEEP_DAYS): each day's page folder and the content-hashed data files its
# page loads (each day's data is its own: its minutes are in it). Shared assets/ and archive/ are not touched.
RETAINED_PREFIXES = ("sessions/", "data/")
RULE_PREFIX = "oi-keep-"


def lifecycle_rules(keep_days: int) -> list[dict[str, Any]]:
    """The bucket's retention rules for past sessions, expiring objects `keep_days` days after they were written."""
    return [
        {
            "ID": f"{RULE_PREFIX}{prefix.strip('/')}",
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "Expiration": {"Days": keep_days},
        }
        for prefix in RETAINED_PREFIXES
    ]


def _lifecycle(client: Any, bucket: str, keep_days: int) -> str:
    """Set our retention rules, keeping any other rule the bucket has (PutBucketLifecycleConfiguration replaces
    the whole configuration). Returns a line for the operator."""
    try:
        current = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if _error_code_of(exc) != "NoSuchLifecycleConfiguration":
            raise
        current = []
    ours = lifecycle_rules(keep_days)
    mine = [r for r in current if str(r.get("ID", "")).startswith(RULE_PREFIX)]
    summary = f"sessions kept {keep_days} days (lifecycle on {', '.join(RETAINED_PREFIXES)})"
    if sorted(map(_rule_view, mine)) == sorted(map(_rule_view, ours)):
        return f"lifecycle: {summary}, already set"
    others = [r for r in current if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": others + ours})
    log.info("s3: lifecycle on %s: %s", bucket, summary)
    return f"lifecycle: {summary}"


def _rule_view(rule: dict[str, Any]) -> str:
    """A rule as compared for idempotence: what S3 gives back for one of ours, in a stable form."""
    keep = {k: rule.get(k) for k in ("ID", "Filter", "Status", "Expiration")}
    return json.dumps(keep, sort_keys=True, default=str)


def _error_code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _check_secret(referer_secret: str) -> None:
    if not referer_secret:
        raise ValueError("S3_REFERER_SECRET is not set: the bucket policy needs it (e.g. `openssl rand -hex 24`)")
    if len(referer_secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"S3_REFERER_SECRET is too short ({MIN_SECRET_LENGTH} characters at least; e.g. `openssl rand -hex 24`)"
        )


def _bucket_exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise  # 403: someone else's bucket, or no s3:ListBucket on ours; either way do not guess
    return True


def setup_bucket(
    client: Any,
    bucket: str,
    region: str,
    referer_secret: str,
    domain_name: str,
    dry_run: bool = False,
    source_ranges: list[str] | None = None,
    keep_days: int | None = None,
) -> list[str]:
    """Create/configure `bucket` as a locked S3 website; returns lines for the operator. Idempotent.

    The lock is the Referer secret, or with `source_ranges` the requests' source addresses (Cloudflare's ranges).
    With `dry_run` no AWS call at all is made (so it also works without credentials) and the secret is masked.
    """
    if source_ranges is None:
        _check_secret(referer_secret)
    if not bucket:
        raise ValueError("S3_BUCKET_NAME is not set")
    lines: list[str] = []
    endpoint = website_endpoint(bucket, region)
    if not domain_name:
        message = f"WARNING: DOMAIN_NAME is not set, cannot check that bucket {bucket} is named like the site's host"
        log.warning(message)
        lines.append(message)
    elif bucket.lower() != domain_name.lower():
        message = (
            f"WARNING: bucket {bucket!r} differs from DOMAIN_NAME {domain_name!r}. An S3 website picks the bucket "
            f"from the Host header, so a CNAME {domain_name} -> {endpoint} will answer NoSuchBucket. "
            f"Name the bucket exactly {domain_name!r}."
        )
        log.warning(message)
        lines.append(message)

    if source_ranges is None:
        policy = bucket_policy(bucket, referer_secret)
        lock = "only with Referer = S3_REFERER_SECRET"
    else:
        policy = source_ip_policy(bucket, source_ranges)
        lock = f"only from the {len(source_ranges)} given address ranges (aws:SourceIp)"
    if dry_run:
        lines.append(f"dry run: would create bucket {bucket} in {region} unless it exists")
        lines.append(f"dry run: would enable website hosting: index {INDEX_KEY}, error document {ERROR_KEY}")
        lines.append(f"dry run: would set the public access block: {json.dumps(PUBLIC_ACCESS_BLOCK)}")
        lines.append("dry run: would set the bucket policy:")
        lines.append(json.dumps(masked_policy(policy), indent=2))
        if keep_days is not None:
            lines.append(f"dry run: would set the lifecycle rules (OI_SNAPSHOT_KEEP_DAYS={keep_days}):")
            lines.append(json.dumps(lifecycle_rules(keep_days), indent=2))
    else:
        if _bucket_exists(client, bucket):
            lines.append(f"bucket {bucket}: exists")
        else:
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client.create_bucket(**kwargs)
            log.info("s3: created bucket %s in %s", bucket, region)
            lines.append(f"bucket {bucket}: created in {region}")
        client.put_bucket_website(Bucket=bucket, WebsiteConfiguration=WEBSITE_CONFIGURATION)
        lines.append(f"website hosting: on (index {INDEX_KEY}, error document {ERROR_KEY})")
        # Before the policy: with BlockPublicPolicy still on, PutBucketPolicy is refused with AccessDenied.
        client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        lines.append("public access block: ACLs blocked, bucket policy allowed")
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        log.info("s3: bucket policy set on %s (GetObject %s)", bucket, lock)
        lines.append(f"bucket policy: s3:GetObject for everyone, {lock}")
        if keep_days is not None:
            lines.append(_lifecycle(client, bucket, keep_days))
    lines.append(f"website endpoint (CNAME target, HTTP only): {endpoint}")
    return lines
