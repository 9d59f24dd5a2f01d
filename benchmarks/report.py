"""Run benchmarks and write their figures into docs/benchmarks.md (what ``make bench`` calls).

Each benchmark is a script under benchmarks/ that prints its figures; this runs the ones named (default: all),
and rewrites their sections of docs/benchmarks.md — the script's docstring (what it measures and its goals), the
machine and date, and what it printed — leaving the other sections as they were, so ``make bench BENCH=serve``
refreshes one table without erasing the rest.

    python benchmarks/report.py [NAME ...]
"""

from __future__ import annotations

import ast
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
OUT = ROOT / "docs" / "benchmarks.md"
NOT_BENCHMARKS = {"common", "report"}
HEAD = """# Benchmarks

Written by `make bench` (benchmarks/report.py): one section per script under benchmarks/, each with what the
script says it measures and what it printed on its last run. Figures are single runs on a shared 2-core build
machine, so they are noisy; compare ratios measured within one run, not absolute figures across runs.
"""


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def describe(name: str) -> str:
    doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text())) or ""
    return doc.split("\n\n")[0].strip()


def sections(text: str) -> dict[str, str]:
    """The existing file's sections by benchmark name (`## name.py`)."""
    parts = re.split(r"^## (\w+)\.py\n", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip() + "\n" for i in range(1, len(parts) - 1, 2)}


def run(name: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
    return proc.returncode, proc.stdout


def section(name: str, output: str, code: int) -> str:
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores"
    status = "" if code == 0 else f" — **exited {code}**"
    return f"{describe(name)}\n\nLast run: {when}{status}\n\n```\n{output.rstrip()}\n```\n"


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available())})", file=sys.stderr)
        return 2
    kept = sections(OUT.read_text()) if OUT.exists() else {}
    failed = 0
    for name in names:
        print(f"== benchmarks/{name}.py", flush=True)
        code, output = run(name)
        failed += code != 0
        kept[name] = section(name, output, code)
        # Written after each benchmark: a long run stopped half-way keeps what it measured.
        body = "".join(f"\n## {n}.py\n\n{kept[n]}" for n in sorted(kept))
        OUT.write_text(HEAD + body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
