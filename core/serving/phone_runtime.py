"""Fetches the phone app's runtime, LiteRT.js, into the app's folder (``make install``).

``python -m core.serving.phone_runtime [REGISTRY]`` downloads the pinned npm packages from
the npm registry (default registry.npmjs.org; ``make install NPM_REGISTRY=...``),
checks each against its pinned SHA-512 (npm's ``integrity``), and unpacks what the app loads into
``core/serving/phone/vendor/``: the ES module, its one dependency, and the two
WebAssembly builds the loader picks from (with and without relaxed SIMD), with the
license. About 19 MB, so fetched at install time and not kept in git (the WebAssembly
files are build outputs of Google's LiteRT, Apache-2.0: nothing to review in a diff).
A second run with the files in place downloads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "phone" / "vendor"
# name, version, npm integrity (sha512), files kept (tarball path -> vendor path)
PACKAGES = (
    ("@litertjs/core", "2.5.3",
     "PlGmbMOq9WitX7FO0jhbdJw9GthatsyuCQXjTt/wJZo0FLaw48q4tz8IwqgqCIkviYGr9OFDL1kCnN4nzWoyJQ==",
     {"package/dist/index.js": "litertjs-core/index.js",
      "package/package.json": "litertjs-core/package.json",
      **{f"package/wasm/litert_wasm_{build}.{ext}": f"litertjs-core/litert_wasm_{build}.{ext}"
         for build in ("internal", "compat_internal") for ext in ("js", "wasm")}}),
    ("@litertjs/wasm-utils", "2.5.3",
     "4fJiw6tBQnIs+0jH/OQ16nYOiSl8/+zZnn5h2ul8aTKHi05sVqZW580Tmk78pC2kT39A9OYBVdFawteZ/sI1kQ==",
     {"package/dist/index.js": "litertjs-wasm-utils/index.js",
      "package/package.json": "litertjs-wasm-utils/package.json"}),
)
MARKER = VENDOR / "VERSIONS"
NOTICE = """LiteRT.js ({versions}), from the npm registry, unchanged.
Copyright Google LLC. Licensed under the Apache License, Version 2.0:
https://www.apache.org/licenses/LICENSE-2.0 (see each package.json's "license").
Source: https://github.com/google-ai-edge/LiteRT/tree/main/litert/js
"""


def _pinned() -> str:
    return ", ".join(f"{name}@{version}" for name, version, _, _ in PACKAGES)


def fetch(registry: str | None = None) -> bool:
    """Downloads and unpacks the runtime unless the pinned one is in place; True if it
    downloaded."""
    if MARKER.is_file() and MARKER.read_text() == _pinned():
        return False
    registry = (registry or "https://registry.npmjs.org").rstrip("/")
    staging = VENDOR.with_name("vendor.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for name, version, integrity, files in PACKAGES:
        url = f"{registry}/{name}/-/{name.split('/')[1]}-{version}.tgz"
        print(f"phone app runtime: {name}@{version} from {url}", flush=True)
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        found = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if found != integrity:
            raise SystemExit(f"{name}@{version}: the download's SHA-512 is {found}, not the "
                             f"pinned {integrity}. To fix this, check NPM_REGISTRY.")
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for inside, kept in files.items():
                member = archive.extractfile(inside)
                if member is None:
                    raise SystemExit(f"{name}@{version} has no {inside}")
                target = staging / kept
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(member.read())
    (staging / "LICENSE").write_text(NOTICE.format(versions=_pinned()))
    (staging / "VERSIONS").write_text(_pinned())
    shutil.rmtree(VENDOR, ignore_errors=True)
    staging.rename(VENDOR)  # whole or not at all: a killed download leaves the old one
    return True


if __name__ == "__main__":
    fetch(sys.argv[1] if len(sys.argv) > 1 else None)
