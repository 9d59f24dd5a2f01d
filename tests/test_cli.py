"""The command line itself: python -m oi lists every operator command, the design-card scripts keep their flags and
exit codes, every command takes its environment as a mapping, and a bad configuration is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oi.cli import day_main, main, night_main, upload_main
from oi.config import process_env
from tests.session import record_session

REPO = Path(__file__).resolve().parents[1]


def run_script(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *argv],
        env={**base, **(env or {})},
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("script", "flags"),
    [
        ("upload.py", ("--date", "--out", "--dry-run", "--allow-stale")),
        ("update_to_a_record.py", ("--ip", "--health-url", "--wait", "--force", "--dry-run", "--stop-on-holiday")),
        ("update_to_cname_record.py", ("--target", "--force", "--dry-run")),
    ],
)
def test_design_card_scripts_keep_their_flags(script, flags, tmp_path):
    done = run_script(str(REPO / script), "--help", cwd=tmp_path)
    assert done.returncode == 0 and f"Usage: {script} [OPTIONS]" in done.stdout
    for flag in flags:
        assert flag in done.stdout, flag
    bad = run_script(str(REPO / script), "--no-such-flag", cwd=tmp_path)
    assert bad.returncode == 2 and "No such option" in bad.stderr


def test_python_m_oi_lists_every_command_and_a_bare_call_is_a_usage_error(tmp_path):
    done = run_script("-m", "oi", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in ("serve", "render", "publish", "dns", "token", "setup", "doctor"):
        assert f"\n  {command} " in done.stdout, command
    assert run_script("-m", "oi", cwd=tmp_path).returncode == 2
    for group, commands in (("dns", ("day", "night")), ("setup", ("s3", "schedules", "cloudflare"))):
        listed = run_script("-m", "oi", group, "--help", cwd=tmp_path).stdout
        assert all(f"\n  {c} " in listed for c in commands), listed


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (main, ["publish"]),
        (main, ["render", "--out", "site"]),
        (main, ["dns", "day"]),
        (main, ["setup", "s3"]),
        (main, ["doctor"]),
        (upload_main, []),
        (day_main, []),
        (night_main, []),
    ],
)
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DHAN_MIN_INTERVAL_SECONDS": "inf"}, "DHAN_MIN_INTERVAL_SECONDS"),
        ({"OI_DATA_DIR": "/dev/null/var"}, "OI_DATA_DIR"),
        ({"OI_HOLIDAYS_FILE": "/nonexistent/holidays.txt"}, "OI_HOLIDAYS_FILE"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2_from_every_command(command, argv, env, variable, capsys):
    assert command(argv, env) == 2
    out, err = capsys.readouterr()
    text = (err or out).strip()
    assert "\n" not in text and variable in text and "Traceback" not in text, text
    assert text.startswith(("python -m oi ", "upload.py: ", "update_to_", "✘ configuration")), text


def test_a_bad_setting_stops_a_real_run_with_one_line(tmp_path):
    done = run_script(str(REPO / "upload.py"), env={"OI_DATA_DIR": "/dev/null/var"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("upload.py: configuration error: OI_DATA_DIR=")


def test_render_and_publish_dry_run_are_the_upload_script_split(store, tmp_path, capsys):
    record_session(store)
    env = {"OI_SYMBOLS": "NIFTY,BANKNIFTY", "OI_DATA_DIR": str(tmp_path / "var")}
    assert main(["render", "--out", str(tmp_path / "site")], env, store=store) == 0
    assert (tmp_path / "site" / "index.html").exists()
    assert main(["publish", "--dry-run"], env, store=store) == 2  # no bucket: a usage error, as upload.py's
    assert "S3_BUCKET_NAME is not set" in capsys.readouterr().err
    assert main(["render"], env, store=store) == 2  # --out is required


def test_the_environment_is_the_process_over_dot_env_and_os_environ_is_untouched(tmp_path, monkeypatch):
    dot_env = tmp_path / ".env"
    dot_env.write_text("OI_TEST_FROM_FILE=file\nOI_TEST_BOTH=file\n")
    monkeypatch.setenv("OI_TEST_BOTH", "process")
    env = process_env(dot_env)
    assert env["OI_TEST_FROM_FILE"] == "file" and env["OI_TEST_BOTH"] == "process"
    assert "OI_TEST_FROM_FILE" not in os.environ


def test_serve_builds_the_app_from_the_environment_and_runs_it(tmp_path, monkeypatch):
    import flask

    calls: list[dict] = []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    env = {"OI_REFRESHER": "0", "OI_DATA_DIR": str(tmp_path / "var"), "PORT": "5123", "OI_SYMBOLS": "NIFTY"}
    assert main(["serve", "--host", "127.0.0.2"], env) == 0
    (call,) = calls
    assert (call["host"], call["port"], call["use_reloader"]) == ("127.0.0.2", 5123, False)
    assert call["app"].extensions["oi"].config.symbols == ("NIFTY",)  # built from `env`, not os.environ


def test_the_wsgi_module_refuses_a_bad_setting_with_one_line_and_exit_2(tmp_path):
    done = run_script("-c", "import app", env={"DHAN_MIN_INTERVAL_SECONDS": "inf"}, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "DHAN_MIN_INTERVAL_SECONDS" in lines[0] and lines[0].startswith("configuration error")
