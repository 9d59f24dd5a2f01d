"""What every operator command shares: the environment as a mapping, the configuration read once from it,
logging with secrets redacted, one way to fail (a line on stderr and an exit code), and the ``--dry-run`` flag.

Exit codes, for every command: 0 done (or nothing to do), 1 refused or failed, 2 usage or configuration error
(``configuration error: …``); ``token`` adds 3 (not confirmed).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from oi.config import Config, ConfigError, from_env, process_env

log = logging.getLogger(__name__)

OK, FAILED, USAGE = 0, 1, 2

dry_run_option = click.option("--dry-run", is_flag=True, help="check and print what would change; write nothing")


class Failure(click.ClickException):
    """End the command with one line on stderr, prefixed with the command's name, and `code`."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.exit_code = code
        ctx = click.get_current_context(silent=True)  # shown after the context has ended: name it now
        self.prefix = ctx.command_path if ctx is not None else "oi"

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.prefix}: {self.message}", err=True)


def config_error(message: object) -> Failure:
    return Failure(f"configuration error: {message}", USAGE)


@dataclass
class Services:
    """The command's world: its environment and the collaborators tests replace (None: the real one)."""

    env: Mapping[str, str] = field(repr=False)  # holds the secrets: never in a repr or a traceback
    store: Any = None
    s3: Any = None
    ec2: Any = None
    scheduler: Any = None
    account: Any = None  # oi.market.dhan_account.DhanAccount
    http: Any = None  # requests.Session for Cloudflare and the doctor's probes
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = from_env(self.env)
            except ConfigError as exc:
                raise config_error(exc) from None
        return self._config


def services() -> Services:
    return click.get_current_context().find_object(Services)


def setup_process_logging(env: Mapping[str, str]) -> None:
    """Logging for a real run: one line per event on stderr, secrets redacted (cron appends it to a log file)."""
    from oi.logs import LOG_FORMAT, setup_logging

    try:
        setup_logging(from_env(env))
    except ConfigError:  # the command reports it as its one line; log plainly meanwhile
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # urllib3 logs request URLs at DEBUG, and the Telegram URL contains the bot token: keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)


def invoke(
    command: click.Command,
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    prog_name: str = "python -m oi",
    **injected: Any,
) -> int:
    """Run `command` with `argv` in `env` and return its exit code (never raises SystemExit).

    With `env` None this is a real run: the process environment over ``.env``, and logging set up. Tests pass a
    dict (and fakes as keyword arguments, see :class:`Services`), and keep their own logging.
    """
    if env is None:
        env = process_env()
        setup_process_logging(env)
    obj = Services(env=env, **injected)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False, obj=obj)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return FAILED
    return result if isinstance(result, int) else OK


def entry_point(command: click.Command, prog_name: str) -> Callable[..., int]:
    """A ``main(argv=None, env=None, **injected) -> int`` for `command` (the scripts' and tests' handle)."""

    def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, **injected: Any) -> int:
        return invoke(command, argv, env, prog_name, **injected)

    main.__doc__ = f"Run ``{prog_name}``: see its --help."
    return main
