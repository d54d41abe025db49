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


def rows(config, sql: str, *args) -> list[tuple]:
    """The rows of one query on ``config``'s SQLite registry database."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        return db.execute(sql, args).fetchall()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@contextmanager
def api_on_a_copy(registry, folder, **settings):
    """A copy of ``registry`` in ``folder`` behind one started API (``settings``: config
    overrides): (config, client, session)."""
    from core.config import load_config
    from tests.registry_files import copy_registry

    root = folder / "registry"
    copy_registry(registry, root)
    config = load_config({}).with_overrides(registry_dir=root, **settings)
    app = create_app(config)
    with TestClient(app) as client:
        yield config, client, app.state.session


@contextmanager
def listening(app):
    """``app`` (already started) served by uvicorn on a free port, in this process: its
    address, ``127.0.0.1:PORT`` (for clients that need a socket, and true concurrency)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def multipart(image: bytes, field: str = "file") -> bytes:
    """A multipart form with ``image`` (PNG or JPEG, said by its type) in ``field``."""
    kind = "jpeg" if image.startswith(b"\xff\xd8") else "png"
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"image.{kind}\"\r\nContent-Type: image/{kind}\r\n\r\n").encode() \
        + image + f"\r\n--{BOUNDARY}--\r\n".encode()
