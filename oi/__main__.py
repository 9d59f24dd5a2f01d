"""Operator commands: ``python -m oi token [--offline] [--json]``.

``token`` tells whether the Dhan access token the service would use now (DHAN_ACCESS_TOKEN, or a renewed one in
DHAN_TOKEN_FILE) is valid: client id, expiry in IST, time left, and whether ``GET /v2/profile`` accepts it. It never
prints the token. Exit codes: 0 valid, 1 invalid (expired, rejected, another client's), 2 usage or configuration
error, 3 not confirmed (Dhan did not answer, or --offline with a token whose expiry cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from oi.config import ConfigError, from_env
from oi.market.calendar import clock_from_config
from oi.tokens import USAGE, DhanAccount, TokenReport, check_token, duration, ist


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m oi", description="Operator commands of the OI dashboard.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "token",
        help="is the Dhan access token valid, and until when",
        description="Show the Dhan access token's client id, expiry (IST), time left and whether Dhan's "
        "/v2/profile accepts it. Never prints the token. Exit 0 valid, 1 invalid, 2 configuration error, "
        "3 not confirmed.",
    )
    t.add_argument("--offline", action="store_true", help="only read the expiry from the token; do not ask Dhan")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def render(report: TokenReport) -> str:
    state = report.state
    rows = [
        ("client id", report.client_id),
        ("token from", report.origin),
        ("expires at", ist(state.expires_at) if state.expires_at else "unknown (not a JWT)"),
        ("time left", duration(state.seconds_left) if state.seconds_left is not None else "unknown"),
    ]
    if report.profile is None:
        rows.append(("/v2/profile", "not asked (--offline)"))
    elif report.profile.accepted:
        validity = f" (tokenValidity {report.profile.detail})" if report.profile.detail else ""
        rows.append(("/v2/profile", f"accepted{validity}"))
    else:
        verdict = "rejected" if report.profile.accepted is False else "no answer"
        rows.append(("/v2/profile", f"{verdict}: {report.profile.detail}"))
    rows.append(("auto renew", "on (DHAN_AUTO_RENEW=1)" if report.auto_renew else "off"))
    verdict = {0: "valid", 1: "INVALID", 3: "not confirmed"}[report.code]
    rows.append(("result", verdict + (f" — {'; '.join(report.problems)}" if report.problems else "")))
    return "\n".join(f"{name:<12} {value}" for name, value in rows)


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, account: DhanAccount | None = None
) -> int:
    args = parser().parse_args(argv)
    try:
        config = from_env(env)
    except ConfigError as exc:
        print(f"python -m oi: configuration error: {exc}", file=sys.stderr)
        return USAGE
    if not (config.dhan_client_id and config.dhan_access_token):
        print("python -m oi token: no Dhan credentials: set DHAN_CLIENT_ID and DHAN_ACCESS_TOKEN", file=sys.stderr)
        return USAGE
    report = check_token(config, clock_from_config(config)(), account, online=not args.offline)
    print(json.dumps(report.as_dict()) if args.json else render(report))
    return report.code


if __name__ == "__main__":
    from dotenv import load_dotenv

    from oi.logs import setup_script_logging

    load_dotenv()
    setup_script_logging()
    sys.exit(main())
