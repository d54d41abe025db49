"""Rules of the code's shape that a reviewer would otherwise have to remember."""

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_core_never_imports_streamlit():
    modules = sorted(p.stem for p in (PROJECT_ROOT / "core").glob("*.py")
                     if p.stem not in ("__init__", "__main__"))
    code = ("import sys\n" + "".join(f"import core.{m}\n" for m in modules)
            + "print('streamlit' in sys.modules or any(n.startswith('streamlit.') "
              "for n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert len(modules) >= 10


def test_serving_path_does_not_import_tensorflow():
    """predict must stay fast: TFLite serving without TensorFlow's import time."""
    code = ("import sys, core.cli, core.serving, core.lifecycle\n"
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_only_config_reads_the_environment():
    offenders = [p.name for p in (PROJECT_ROOT / "core").glob("*.py")
                 if p.name not in ("config.py", "__main__.py")
                 and ("os.environ" in p.read_text() or "os.getenv" in p.read_text())]
    assert offenders == []
