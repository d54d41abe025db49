"""Running ``python -m core``: in this process (most tests), or as a real subprocess (the
few that check what only a process shows), with the same result either way."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import subprocess
import sys
from contextlib import closing, redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

from core.cli import main

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_cli(registry, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m core --registry REGISTRY ARGS`` run by ``core.cli.main`` in this process:
    its stdout, stderr and exit status, as a subprocess would give them (a process start
    costs ~4 s of imports; the suite runs about a hundred commands)."""
    argv = ["--registry", str(registry), *args]
    out, err = io.StringIO(), io.StringIO()
    environment = {k: v for k, v in os.environ.items() if k != "MODEL_REGISTRY_DIR"}
    with (redirect_stdout(out), redirect_stderr(err),
          mock.patch.object(sys, "stdin", io.StringIO(stdin or "")),
          mock.patch.dict(os.environ, environment, clear=True)):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's refusals and --help
            code = exit_.code if isinstance(exit_.code, int) else 2
    return subprocess.CompletedProcess(["python", "-m", "core", *argv], code,
                                       out.getvalue(), err.getvalue())


def run_cli_process(registry, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The same command as a real ``python -m core`` process."""
    env = {k: v for k, v in os.environ.items() if k != "MODEL_REGISTRY_DIR"}
    result = subprocess.run([sys.executable, "-m", "core", "--registry", str(registry), *args],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, env=env,
                            timeout=300, input=stdin)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its content; the database by its rows.

    SQLite's write-ahead log and its index (``registry.db-wal``, ``-shm``) change when a
    process only opens or reads the database, and a checkpoint moves pages from one file
    to the other: the database is compared by what it holds, every other file by bytes.
    """
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(folder.rglob("*"))
             if p.is_file() and not p.name.startswith("registry.db")}
    database = folder / "registry.db"
    if database.exists():
        with closing(sqlite3.connect(database)) as db:
            rows = "\n".join(db.iterdump())
        files["registry.db (its rows)"] = hashlib.sha256(rows.encode()).hexdigest()
    return files
