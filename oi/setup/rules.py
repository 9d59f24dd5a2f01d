"""One-time (idempotent) Cloudflare rules of the zone: the request header transform rule (Referer for the S3
snapshot, X-Origin-Secret for the instance) and the cache rule for ``/api/*``. ``python -m oi setup cloudflare``.

Each rule is found among the operator's other rules of its phase by a stable ``ref``, merged in place, and written
only when it differs, so re-running changes nothing.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from oi.cloudflare import Cloudflare
from oi.security import ORIGIN_HEADER

log = logging.getLogger(__name__)

TRANSFORM_PHASE = "http_request_late_transform"
RULE_REF = "oi_s3_referer"  # stable handle to find our rule among the operator's other transform rules
MASK = "***"
CACHE_PHASE = "http_request_cache_settings"
CACHE_RULE_REF = "oi_api_cache"


def transform_rule(domain: str, secret: str, origin_secret: str = "") -> dict[str, Any]:
    """Set Referer to the shared secret on requests to `domain`, so the S3 bucket policy lets Cloudflare in; with
    `origin_secret` also X-Origin-Secret, which the instance's origin lock (oi/security.py) demands."""
    headers, purposes = {}, []
    if secret:
        headers["Referer"] = {"operation": "set", "value": secret}
        purposes.append("Referer for the S3 snapshot")
    if origin_secret:
        headers[ORIGIN_HEADER] = {"operation": "set", "value": origin_secret}
        purposes.append(f"{ORIGIN_HEADER} for the instance")
    return {
        "ref": RULE_REF,
        "description": f"OI: set {' and '.join(purposes)} of {domain}",
        "expression": f'(http.host eq "{domain}")',
        "action": "rewrite",
        "action_parameters": {"headers": headers},
        "enabled": True,
    }


def masked(rule: dict) -> dict:
    out = copy.deepcopy(rule)
    for header in (out.get("action_parameters") or {}).get("headers", {}).values():
        if isinstance(header, dict) and "value" in header:
            header["value"] = MASK
    return out


def _names(rule: dict) -> str:
    return ", ".join(rule["action_parameters"]["headers"])


_RULE_KEYS = ("expression", "action", "action_parameters", "enabled", "description")
_READ_ONLY = ("version", "last_updated", "categories")


def ensure_rule(cf: Cloudflare, phase: str, wanted: dict, dry_run: bool = False, description: str = "") -> str:
    """Merge `wanted` (found by its ``ref``) into the zone's entry-point ruleset of `phase`, keeping the operator's
    other rules as they are; write only when it differs. Returns "created", "updated", "unchanged" or, with
    `dry_run`, "would be created"/"would be updated"."""
    ref = wanted["ref"]
    current = cf.get_phase_entrypoint(phase)
    rules = [{k: v for k, v in r.items() if k not in _READ_ONLY} for r in (current or {}).get("rules", [])]
    mine = [r for r in rules if r.get("ref") == ref]
    if len(mine) == 1 and all(mine[0].get(k) == wanted.get(k) for k in _RULE_KEYS):
        return "unchanged"
    outcome = "updated" if mine else "created"
    if mine:  # keep our rule where the operator put it; drop accidental duplicates
        index = rules.index(mine[0])
        rules = [r for r in rules if r.get("ref") != ref]
        rules.insert(index, {**wanted, **({"id": mine[0]["id"]} if mine[0].get("id") else {})})
    else:
        rules.append(wanted)
    if dry_run:
        return f"would be {outcome}"
    cf.put_phase_entrypoint(phase, rules, description=(current or {}).get("description") or description)
    return outcome


def ensure_transform_rule(
    cf: Cloudflare, domain: str, secret: str, dry_run: bool = False, origin_secret: str = ""
) -> str:
    """Create/update our rule in the zone's late-transform entry point, keeping other rules as they are."""
    wanted = transform_rule(domain, secret, origin_secret)
    outcome = ensure_rule(cf, TRANSFORM_PHASE, wanted, dry_run, "Request header transform rules")
    log.info("transform rule %s: %s (%s = %s for %s)", RULE_REF, outcome, _names(wanted), MASK, domain)
    return outcome


# ------------------------------------------------------------------------------------------------ cache rule


def cache_rule(domain: str) -> dict[str, Any]:
    """Let Cloudflare's edge cache the API (``/api/*`` of `domain`) for as long as the app's Cache-Control says.

    Cloudflare caches no JSON by default, so without this rule every viewer's poll reaches the instance. With it,
    the app's Cache-Control decides how long an answer may be served from the edge (``no-cache``: not at all).
    """
    return {
        "ref": CACHE_RULE_REF,
        "description": f"OI: cache /api/* of {domain} at the edge as the origin's Cache-Control says",
        "expression": f'(http.host eq "{domain}" and http.request.uri.path wildcard "/api/*")',
        "action": "set_cache_settings",
        "action_parameters": {"cache": True, "edge_ttl": {"mode": "respect_origin"}},
        "enabled": True,
    }


def describe_cache_rule(rule: dict) -> str:
    ttl = rule["action_parameters"]["edge_ttl"]["mode"]
    return f"{rule['expression']} -> cache eligible, edge TTL {ttl}"


def ensure_cache_rule(cf: Cloudflare, domain: str, dry_run: bool = False) -> str:
    wanted = cache_rule(domain)
    outcome = ensure_rule(cf, CACHE_PHASE, wanted, dry_run, "Cache rules")
    log.info("cache rule %s: %s (%s)", CACHE_RULE_REF, outcome, describe_cache_rule(wanted))
    return outcome
