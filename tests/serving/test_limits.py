"""What the cheapest request can cost: decoding budgets, the log writer's queue, a locked
or full database, awkward JSON and header text. Every refusal is a 4xx or a 503 with
``Retry-After``, never a 5xx, and changes nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from core.config import load_config
from core.serving.api import create_app
from tests.conftest import copy_registry, fashion_test_images
from tests.images_factory import webp_bomb
from tests.serving.clients import api_on_a_copy, b64, png
from tests.serving.processes import Flood, group_rss, server

MODEL = "/v1/models/classifier"
IMAGES, _ = fashion_test_images(4)
BOMB = webp_bomb()


@contextmanager
def others_holding(budget, pixels: int):
    """Other requests holding ``pixels`` of a process's budget (each at most its limit)."""
    with ExitStack() as stack:
        while pixels > 0:
            share = min(pixels, budget.per_request)
            stack.enter_context(budget.request()).take(share, "another request")
            pixels -= share
        yield


def count(config, table: str) -> int:
    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture(scope="module")
def limited(trained_registry, tmp_path_factory):
    """A copy of the trained registry behind one API."""
    with api_on_a_copy(trained_registry, tmp_path_factory.mktemp("limited")) as served:
        yield served


def test_images_over_the_request_budget_are_413_before_any_decoding(limited, monkeypatch):
    config, client, session = limited
    before = count(config, "predictions")
    decoded = []  # every image the decoder was asked to decode (inline or in its processes)
    decoder = session.backends.decoder
    monkeypatch.setattr(decoder, "_decode", lambda image: decoded.append(image))
    # 256 bombs: a 547 KB body asking for ~10 billion pixels (~30 GB decoded).
    reply = client.post(f"{MODEL}:predict", json={"instances": [b64(BOMB)] * 256})
    assert reply.status_code == 413
    message = reply.json()["error"]
    assert "MAX_REQUEST_PIXELS" in message and "To fix this" in message
    assert decoded == []  # headers only: nothing was decoded
    assert session.backends.decoder.budget.used == 0  # the reservation was given back
    assert count(config, "predictions") == before


def test_one_bomb_is_decoded_at_a_reduced_size_and_answered(limited):
    _, client, _ = limited
    reply = client.post(f"{MODEL}:predict", json={"instances": [b64(BOMB)]})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["predictions"]) == 1


def test_a_spent_process_budget_is_503_with_retry_after(limited):
    config, client, session = limited
    budget = session.backends.decoder.budget
    before = count(config, "predictions")
    with others_holding(budget, budget.in_flight - 100):
        reply = client.post(f"{MODEL}:predict", json={"instances": [b64(png(IMAGES[0]))]})
        plain = client.post("/v1/predict", files={"file": ("a.png", png(IMAGES[0]))})
    for answer in (reply, plain):
        assert answer.status_code == 503 and int(answer.headers["retry-after"]) >= 1
        assert "MAX_PIXELS_IN_FLIGHT" in answer.json()["error"]
    assert count(config, "predictions") == before
    assert client.post(f"{MODEL}:predict",
                       json={"instances": [b64(png(IMAGES[0]))]}).status_code == 200


def test_a_dashboard_visitor_waits_for_room_instead_of_failing(limited):
    from core.app import predict_image

    backends = limited[2].backends
    budget = backends.decoder.budget
    taken = threading.Event()

    def hold_everything_for_half_a_second():
        with others_holding(budget, budget.in_flight):
            taken.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_everything_for_half_a_second)
    holder.start()
    assert taken.wait(5)
    started = time.perf_counter()
    prediction, _ = predict_image(backends, png(IMAGES[1]), actor="anonymous",
                                  source="upload", now=datetime.now(UTC))
    assert time.perf_counter() - started >= 0.3 and prediction.label
    holder.join()


def test_deeply_nested_json_is_400(limited):
    _, client, _ = limited
    for body in (b"[" * 100_000 + b"]" * 100_000,
                 b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"):
        reply = client.post(f"{MODEL}:predict", content=body)
        assert reply.status_code == 400, reply.text
        assert "To fix this" in reply.json()["error"]


def test_a_locked_database_is_a_quick_503_and_nothing_is_kept(trained_registry, tmp_path):
    root = tmp_path / "registry"
    copy_registry(trained_registry, root)
    config = load_config({}).with_overrides(registry_dir=root, log_write_wait_seconds=1)
    with TestClient(create_app(config)) as client:
        body = {"instances": [b64(png(IMAGES[2]))]}
        assert client.post(f"{MODEL}:predict", json=body).status_code == 200
        before = count(config, "predictions")
        locker = sqlite3.connect(root / "registry.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        try:
            started = time.perf_counter()
            reply = client.post(f"{MODEL}:predict", json=body)
            waited = time.perf_counter() - started
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert reply.status_code == 503, reply.text
        assert int(reply.headers["retry-after"]) >= 1
        assert "database is busy" in reply.json()["error"]
        assert waited < 5  # LOG_WRITE_WAIT_SECONDS=1, not the minute other writes wait
        assert count(config, "predictions") == before
        assert client.post(f"{MODEL}:predict", json=body).status_code == 200


def test_a_full_disk_is_a_503_naming_it(trained_registry, tmp_path):
    root = tmp_path / "registry"
    copy_registry(trained_registry, root)
    config = load_config({}).with_overrides(registry_dir=root)
    with TestClient(create_app(config)) as client:
        body = {"instances": [b64(png(IMAGES[3]))]}
        assert client.post(f"{MODEL}:predict", json=body).status_code == 200
        database = client.app.state.session.backends.database
        database.dispose()

        @event.listens_for(database.engine, "connect")
        def no_room(dbapi_connection, _record):
            # SQLite's own "database or disk is full": the file may not grow any more.
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

        before = count(config, "predictions")
        replies = [client.post(f"{MODEL}:predict", json=body) for _ in range(30)]
        full = [r for r in replies if r.status_code != 200]
        assert full, "30 predictions fitted in the file's free pages"
        assert all(r.status_code == 503 and "is full" in r.json()["error"] for r in full)
        assert count(config, "predictions") == before + len(replies) - len(full)


def test_a_class_name_outside_latin_1_reaches_explain_headers_encoded(trained_registry,
                                                                        tmp_path):
    root = tmp_path / "registry"
    copy_registry(trained_registry, root)
    with closing(sqlite3.connect(root / "registry.db")) as db, db:
        (metadata,) = db.execute("SELECT metadata FROM versions WHERE version = 1").fetchone()
        document = json.loads(metadata)
        document["class_names"] = [f"T恤 {i}" for i in range(10)]
        db.execute("UPDATE versions SET metadata = ? WHERE version = 1",
                   (json.dumps(document),))
    config = load_config({}).with_overrides(registry_dir=root)
    with TestClient(create_app(config)) as client:
        reply = client.post("/v1/explain", files={"file": ("a.png", png(IMAGES[0]))})
        assert reply.status_code == 200, reply.text
        header = reply.headers["x-predicted-class"]
        assert header.startswith("UTF-8''") and header.isascii()
        assert unquote(header.removeprefix("UTF-8''")).startswith("T恤 ")
        chosen = client.post("/v1/explain", params={"class": "T恤 3"},
                             files={"file": ("a.png", png(IMAGES[0]))})
        assert unquote(chosen.headers["x-explained-class"].removeprefix("UTF-8''")) == "T恤 3"


@pytest.mark.slow
@pytest.mark.serial  # /healthz's latency bound: no other test beside it
def test_a_flood_of_bombs_leaves_healthz_fast_and_memory_bounded(registry_copy):
    one = json.dumps({"instances": [b64(BOMB)]}).encode()
    many = json.dumps({"instances": [b64(BOMB)] * 256}).encode()
    with server(registry_copy) as (port, process):
        before = group_rss(process.pid)
        flood = Flood(port, process.pid, [one] * 5 + [many]).run(8)
    growth = max(flood.rss) - before
    print(f"bomb flood, 8 s: {flood.statuses}; /healthz worst "
          f"{max(flood.healthz) * 1000:.0f} ms of {len(flood.healthz)}; RSS "
          f"{before / 2**20:.0f} MB -> peak {max(flood.rss) / 2**20:.0f} MB")
    assert flood.errors == []
    assert set(flood.statuses) <= {200, 413, 503} and flood.statuses.get(200, 0) >= 1
    assert flood.statuses.get(413, 0) >= 1  # the 256-bomb requests
    assert flood.retry_after == flood.statuses.get(503, 0)
    assert max(flood.healthz) < 0.1 and len(flood.healthz) > 100
    # One bomb decoding at a time (MAX_PIXELS_IN_FLIGHT): ~650 MB for WebP's decoder.
    assert growth < 1.2 * 2**30


def test_a_phone_photo_at_the_image_limit_costs_a_fraction_of_the_budget(limited):
    from PIL import Image

    from core.app import predict_image
    from tests.images_factory import save

    backends = limited[2].backends
    photo = save(Image.new("RGB", (7296, 5472), (120, 90, 60)), "JPEG", quality=85)  # 40 MP
    with backends.decoder.request() as pixels:
        (decoded,) = backends.decoder.decode([photo], pixels)
    # Its decoder works at 1/4 scale: 2.5 million pixels reserved, not 40 million.
    assert pixels.taken == 1824 * 1368 and decoded.pixels.shape[:2] == (1368, 1824)
    assert decoded.original_size == (7296, 5472)
    prediction, _ = predict_image(backends, photo, actor="anonymous", source="camera",
                                  now=datetime.now(UTC))
    assert prediction.label


def test_a_server_process_does_its_small_matrix_products_on_one_blas_thread(registry_copy):
    """OpenBLAS's idle threads spin between calls: with a thread per core, two workers on
    two cores spent 8 ms of CPU per 28x28 answer (2.4 ms with one)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=None):  # restores this process's threads on exit
        create_app(registry_copy)
        blas = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    assert blas == {1}
