"""The operator's command line: ``python -m oi COMMAND`` (``python -m oi --help`` lists them).

Every command is a click command taking its environment as a mapping (:func:`main` ``(argv, env)``; tests pass a
dict, a real run the process environment over ``.env``) and sharing one start-up (:mod:`oi.cli.startup`). The
design-card scripts ``upload.py``, ``update_to_a_record.py`` and ``update_to_cname_record.py`` run the same
commands under their own names.
"""

from __future__ import annotations

import click

from oi.cli import dns, publish, serve, setup, token
from oi.cli.doctor import doctor
from oi.cli.startup import entry_point


@click.group(
    "oi",
    help="Operator commands of the OI dashboard. Exit codes: 0 done, 1 refused or failed, 2 usage or "
    "configuration error.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)
def cli() -> None:
    pass


for command in (
    serve.serve,
    publish.render,
    publish.publish,
    dns.dns,
    token.token,
    setup.setup,
    doctor,
):
    cli.add_command(command)

main = entry_point(cli, "python -m oi")
upload_main = entry_point(publish.upload, "upload.py")
day_main = entry_point(dns.day, "update_to_a_record.py")
night_main = entry_point(dns.night, "update_to_cname_record.py")
