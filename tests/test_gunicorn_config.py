"""A bad setting under gunicorn (red team #14, finding 2): the master validates the configuration once and exits
non-zero with the variable's name, instead of rebooting crashing workers forever."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mongo_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def exec_start() -> list[str]:
    line = next(x for x in (ROOT / "oi.service").read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.split("=", 1)[1])


def test_the_unit_runs_gunicorn_with_the_validating_config():
    argv = exec_start()
    assert argv[argv.index("--config") + 1] == "/opt/oi/gunicorn.conf.py"


@pytest.mark.parametrize(
    ("variable", "value"), [("DHAN_MIN_INTERVAL_SECONDS", "abc"), ("OI_SYMBOLS", "NOPE"), ("OI_SOURCE", "dhan")]
)
def test_bad_setting_stops_the_master_with_the_variable_named(variable, value, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OI_", "DHAN_", "MONGO_"))}
    env.update({variable: value, "OI_DATA_DIR": str(tmp_path)})
    argv = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")]
    argv += ["--bind", f"127.0.0.1:{free_port()}", "app:app"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=30)  # the failure detector: a crash-looping master never exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert f"configuration error: {variable}" in err or (variable == "OI_SOURCE" and "OI_SOURCE=dhan needs" in err)
    assert "Booting worker" not in err  # stopped before any worker
