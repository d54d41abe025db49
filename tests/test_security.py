"""Security: names checked before paths, models never run code, secrets never shown.

The live server's side (XSRF, origins, upload file names) is in tests/e2e/test_security.py.
"""

import json
import shutil
import tomllib

import keras
import pytest

from core.app import explain_image, sign_in
from core.audit import Actor
from core.cli import main
from core.config import load_config
from core.errors import ActionRefused, ModelError
from core.ml.images import encode_png
from tests.conftest import FIXED_NOW, PASSWORD, PROJECT_ROOT, backends_of, fashion_test_images

pytestmark = pytest.mark.slow


def files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("args, message", [
    (["--model-name", "../escaped", "versions"], "invalid model name '../escaped'"),
    (["--model-name", "a/b", "predict", "x.png"], "invalid model name 'a/b'"),
    (["--model-name", "/etc", "jobs"], "invalid model name '/etc'"),
    (["predict", "x.png", "--version", "../1"], "invalid version '../1'"),
    (["compare", "1", "2/../../3"], "invalid version '2/../../3'"),
    (["bootstrap", "--dataset", "tfds:../../etc/passwd"], "invalid TFDS dataset name"),
    (["bootstrap", "--dataset", "tfds:mnist/../../x"], "invalid TFDS dataset name"),
    (["users", "add", "../root", "--role", "admin"], "invalid user name '../root'"),
])
def test_names_are_refused_before_any_path_is_built(tmp_path, capsys, args, message):
    registry = tmp_path / "registry"
    registry.mkdir()
    before = files_under(tmp_path)
    assert main(["--registry", str(registry), *args]) == 1
    error = capsys.readouterr().err
    assert message in error and "To fix this" in error and error.count("\n") == 1
    assert files_under(tmp_path) == before  # nothing created, inside or beside it


@pytest.fixture
def code_carrying_version(registry_copy, tmp_path):
    """A version whose model.keras holds a Lambda layer that creates a file when run:
    what a tampered or untrusted model file looks like. Returns (version, marker)."""
    marker = tmp_path / "the-model-ran-code"
    # A lambda with the path inside its own code, as an attacker would write it.
    payload = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    registry = backends_of(registry_copy).registry
    champion = registry.files(1)
    original = keras.saving.load_model(champion / "model.keras", compile=False)
    tampered = keras.Model(original.inputs, keras.layers.Lambda(payload)(original.outputs[0]))

    def write(folder):
        for item in champion.iterdir():
            if item.name not in ("metadata.json", "model.keras"):
                (shutil.copytree if item.is_dir() else shutil.copy)(item, folder / item.name)
        tampered.save(folder / "model.keras")

    marker.unlink(missing_ok=True)  # building the model ran it once, here, on purpose
    version = registry.register_version(write, registry.get_version(1).metadata,
                                        actor=Actor("olga", "operator"), now=FIXED_NOW)
    return version.version, marker


def test_a_model_carrying_code_is_refused_and_its_code_never_runs(registry_copy,
                                                                  code_carrying_version,
                                                                  capsys, tmp_path):
    version, marker = code_carrying_version
    image = encode_png(fashion_test_images(1)[0][0])
    with pytest.raises(ModelError, match="safe mode .*Lambda.* To fix this"):
        explain_image(backends_of(registry_copy), image, actor="anonymous", source="upload",
                      now=FIXED_NOW, version=version)
    path = tmp_path / "boot.png"
    path.write_bytes(image)
    assert main(["--registry", str(registry_copy.registry_dir), "explain", str(path),
                 "--out", str(tmp_path / "heat.png"), "--version", str(version)]) == 1
    assert "safe mode" in capsys.readouterr().err
    assert not marker.exists()  # refused before any of its code could run
    # The control: Keras with safe mode off would have run it while loading.
    keras.saving.load_model(backends_of(registry_copy).registry.files(version) / "model.keras",
                            safe_mode=False)
    assert marker.exists()


def test_no_code_path_unpickles_or_turns_safe_mode_off():
    core = PROJECT_ROOT / "core"
    sources = {str(p.relative_to(core)): p.read_text() for p in core.rglob("*.py")}
    for forbidden in ("import pickle", "import dill", "import joblib", "allow_pickle=True",
                      "safe_mode=False", "enable_unsafe_deserialization"):
        assert [name for name, text in sources.items() if forbidden in text] == [], forbidden
    assert "allow_pickle=False" in sources["monitoring/report.py"]  # reference profiles
    assert "safe_mode=True" in sources["ml/exports.py"]


def test_passwords_and_hashes_never_leave_the_user_table(registry_copy, capsys):
    backends = backends_of(registry_copy)
    wrong = "not-the-password-9"
    with pytest.raises(ActionRefused):
        sign_in(backends, "rita", wrong, FIXED_NOW)
    sign_in(backends, "rita", PASSWORD, FIXED_NOW)
    hashes = [row[0] for row in backends.database.read("SELECT password_hash FROM users")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    secrets = [PASSWORD, wrong, *hashes, "$argon2"]
    registry = str(registry_copy.registry_dir)
    outputs = []
    for args in (["users", "list", "--json"], ["users", "list"],
                 ["audit", "export", "--format", "json"], ["audit", "export", "--format", "csv"],
                 ["audit", "verify", "--json"]):
        assert main(["--registry", registry, *args, "--actor", "ada"]) == 0
        outputs.append(capsys.readouterr().out)
    entries = json.dumps([e.as_dict() for e in backends.audit_log.read_entries()])
    assert '"action": "login", "outcome": "refused"' in entries  # attempts are logged ...
    for text in (*outputs, entries):
        for secret in secrets:  # ... without what was typed or stored
            assert secret not in text


def test_streamlit_settings_keep_protections_on_and_secrets_out_of_git():
    settings = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["enableXsrfProtection"] is True
    assert settings["server"]["enableCORS"] is True
    assert settings["client"]["showErrorDetails"] == "none"  # no traceback to a visitor
    assert settings["browser"]["gatherUsageStats"] is False
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert ".streamlit/secrets.toml" in ignored  # OIDC client and cookie secrets stay local


def test_no_default_password_is_shipped(tmp_path, capsys):
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry")
    backends = backends_of(config)
    # First start without a terminal (CI, a service): nobody is created, it says how.
    assert main(["--registry", str(config.registry_dir), "users", "setup"]) == 0
    assert "Add the first admin" in capsys.readouterr().out
    assert not backends.users.has_users()
    for name, password in (("admin", "admin"), ("admin", "password"), ("root", "changeme")):
        with pytest.raises(ActionRefused):
            sign_in(backends, name, password, FIXED_NOW)
    shipped = [p for folder in ("core", "dashboard", "bench", ".streamlit", "model_registry")
               for p in (PROJECT_ROOT / folder).rglob("*")
               if p.is_file() and p.suffix in (".py", ".toml", ".md", ".json", ".txt")]
    assert len(shipped) > 20
    assert [p for p in shipped if "$argon2" in p.read_text(errors="replace")] == []
