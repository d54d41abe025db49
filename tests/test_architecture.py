"""Rules of the code's shape that a reviewer would otherwise have to remember."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

CORE = PROJECT_ROOT / "core"
# The concrete backends: only the composition root constructs them.
CONCRETE_BACKENDS = {"SQLiteDatabase", "PostgresDatabase", "SQLCatalog", "LocalArtifactStore",
                     "S3ArtifactStore",
                     "SQLPredictionLog", "LocalProcessExecutor", "RayJobExecutor", "JobStore", "JobQueue",
                     "UserStore", "AuditLog", "AccessControl", "Registry", "ModelCache"}
COMPOSITION_ROOT = CORE / "app" / "backends.py"
FRONT_ENDS = [*(CORE / "cli").rglob("*.py"), CORE / "worker.py", *(CORE / "serving").rglob("*.py"),
              *(PROJECT_ROOT / "dashboard").rglob("*.py")]
# What a front end may import from core: the application layer, its errors and settings
# (and the serving API, which ``python -m core serve`` starts).
FRONT_END_IMPORTS = ("core.app", "core.errors", "core.text", "core.config", "core.serving")
# The domain packages, lowest first: each imports only packages before it (and the plain
# modules: errors, names, text, config). The audit log sits below every package that
# writes to it; the OOD detector is a model component, in ml.
DOMAIN_ORDER = ("storage", "audit", "registry", "ml", "monitoring", "governance", "jobs")
DOMAIN_PACKAGES = DOMAIN_ORDER


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def constructed(path: Path) -> set[str]:
    """Names of the classes ``path`` calls, e.g. ``Database(...)``."""
    return {node.func.id for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)


def test_core_never_imports_streamlit():
    names = [dotted(p) for p in modules(CORE) if p.stem != "__main__"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in names)
            + "print('streamlit' in sys.modules or any(n.startswith('streamlit.') "
              "for n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert len(names) >= 30


def test_serving_path_does_not_import_tensorflow():
    """predict must stay fast: TFLite serving without TensorFlow's import time."""
    code = ("import sys, core.cli, core.app, core.ml.predictor, core.worker, core.serving.api\n"
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_only_config_reads_the_environment():
    # The entry points only set TensorFlow's log level before it is imported.
    # The server sets (never reads) what its worker processes and prometheus_client read.
    allowed = {CORE / "config.py", CORE / "__main__.py", CORE / "worker.py",
               CORE / "serving" / "server.py"}
    offenders = [dotted(p) for p in modules(CORE) if p not in allowed
                 and ("os.environ" in p.read_text() or "os.getenv" in p.read_text())]
    assert offenders == []


def test_only_the_composition_root_builds_backends():
    offenders = {dotted(p): sorted(constructed(p) & CONCRETE_BACKENDS)
                 for p in [*modules(CORE), *modules(PROJECT_ROOT / "dashboard")]
                 if p != COMPOSITION_ROOT and constructed(p) & CONCRETE_BACKENDS}
    assert offenders == {}
    assert constructed(COMPOSITION_ROOT) >= {"SQLCatalog", "LocalArtifactStore",
                                             "SQLPredictionLog", "JobStore", "ModelCache"}


def test_front_ends_use_only_the_application_layer():
    """... and their own package (``core.cli.alerts`` imports ``core.cli.common``)."""
    def own(path: Path) -> str:
        return ".".join(dotted(path).split(".")[:2])

    offenders = {dotted(p): sorted(name for name in imported(p) if name.startswith("core")
                                   and not name.startswith((*FRONT_END_IMPORTS, own(p))))
                 for p in FRONT_ENDS}
    assert {name: wrong for name, wrong in offenders.items() if wrong} == {}


def test_domain_packages_never_reach_up():
    """Dependencies point down: front ends -> app -> domain packages -> storage."""
    offenders = {}
    for package in DOMAIN_PACKAGES:
        for path in modules(CORE / package):
            upward = sorted(name for name in imported(path)
                            if name.startswith(("core.app", "core.cli", "core.worker")))
            if upward:
                offenders[dotted(path)] = upward
    assert offenders == {}


def test_storage_knows_nothing_of_the_domain():
    imports = set().union(*(imported(p) for p in modules(CORE / "storage")))
    own = {dotted(p) for p in modules(CORE / "storage")}  # schema, database, secrets, ...
    assert {name for name in imports if name.startswith("core.")} <= {
        "core.errors", "core.storage"} | own


def test_domain_packages_import_only_packages_below_them():
    offenders = {}
    for rank, package in enumerate(DOMAIN_ORDER):
        higher = tuple(f"core.{other}" for other in DOMAIN_ORDER[rank + 1:])
        for path in modules(CORE / package):
            upward = sorted(name for name in imported(path)
                            if name.startswith(higher) and name.split(".")[1] != package)
            if upward:
                offenders[dotted(path)] = upward
    assert offenders == {}


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 60


def test_modules_and_functions_stay_small():
    """No module in core over 450 lines, no function over 60 (its docstring aside): a
    reader sees a module's job and a function's steps at once."""
    long_modules = {dotted(p): n for p in modules(CORE)
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {}
    for path in modules(CORE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if ast.get_docstring(node) is not None:
                    lines -= node.body[0].end_lineno - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions[f"{dotted(path)}.{node.name}"] = lines
    assert (long_modules, long_functions) == ({}, {})
