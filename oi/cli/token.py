"""``token``: is the Dhan access token the service would use now valid, and until when.

The token is DHAN_ACCESS_TOKEN, or a renewed one in DHAN_TOKEN_FILE: client id, expiry in IST, time left, and whether
``GET /v2/profile`` accepts it. It never prints the token. Exit codes: 0 valid, 1 invalid (expired, rejected,
another client's), 2 usage or configuration error, 3 not confirmed (Dhan did not answer, or --offline with a token
whose expiry cannot be read).
"""

from __future__ import annotations

import json

import click

from oi.cli.startup import USAGE, Failure, services
from oi.dhan_token import duration, ist
from oi.market.calendar import clock_from_config
from oi.tokens import TokenReport, check_token


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


@click.command(
    "token",
    help="Show the Dhan access token's client id, expiry (IST), time left and whether Dhan's /v2/profile accepts "
    "it. Never prints the token. Exit 0 valid, 1 invalid, 2 configuration error, 3 not confirmed.",
    short_help="is the Dhan access token valid, and until when",
)
@click.option("--offline", is_flag=True, help="only read the expiry from the token; do not ask Dhan")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def token(offline: bool, as_json: bool) -> int:
    svc = services()
    config = svc.config
    if not (config.dhan_client_id and config.dhan_access_token):
        raise Failure("no Dhan credentials: set DHAN_CLIENT_ID and DHAN_ACCESS_TOKEN", USAGE)
    report = check_token(config, clock_from_config(config)(), svc.account, online=not offline)
    click.echo(json.dumps(report.as_dict()) if as_json else render(report))
    return report.code
