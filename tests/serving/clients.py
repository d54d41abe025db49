"""Calling the serving API from tests: image bodies, and an API on a registry's copy."""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from core.serving.api import create_app


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@contextmanager
def api_on_a_copy(registry, folder):
    """A copy of ``registry`` in ``folder`` behind one started API:
    (config, client, session)."""
    import shutil

    from core.config import load_config

    root = folder / "registry"
    shutil.copytree(registry, root)
    config = load_config({}).with_overrides(registry_dir=root)
    app = create_app(config)
    with TestClient(app) as client:
        yield config, client, app.state.session


BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def multipart(png: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"image.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + png + (
        f"\r\n--{BOUNDARY}--\r\n").encode()
