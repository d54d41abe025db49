import random
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC

import numpy as np
import pytest

from core.audit import Actor
from core.errors import InvalidInput
from core.ml.images import encode_png
from core.monitoring.log_records import NONE_OF_THESE
from core.monitoring.prediction_log import PredictionLog
from tests.conftest import (
    PROJECT_ROOT,
    backends_of,
    environment_of,
)
from tests.log_rows import record

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


def open_log(config) -> PredictionLog:
    """The log under test, on ``config``'s database (the contract suite's one seam)."""
    return backends_of(config).prediction_log


def test_round_trip(config):
    log = open_log(config)
    ids = log.append([record(1), record(2, true_label=3), record(3, version=2)])
    assert ids == [1, 2, 3]
    window = log.window("m", 1)
    assert len(window) == 2 and list(window.ids) == [1, 2]
    assert list(window.predicted) == [1, 2] and list(window.true_labels) == [-1, 3]
    assert window.probabilities.shape == (2, 10)
    np.testing.assert_allclose(window.probabilities[0], record(1).probabilities)
    np.testing.assert_allclose(window.embeddings[1], record(2).embedding)
    assert window.statistics["brightness"][1] == pytest.approx(0.2)
    assert log.count("m") == 3 and log.count("m", 2) == 1


def test_windows_by_count_and_time(config):
    log = open_log(config)
    log.append([record(i) for i in range(50)])
    assert list(log.window("m", 1, last=5).ids) == [46, 47, 48, 49, 50]  # oldest first
    timed = log.window("m", 1, since="2026-01-01T00:00:10", until="2026-01-01T00:00:20")
    assert len(timed) == 10
    assert len(log.window("m", 7)) == 0


def test_empty_log_creates_nothing(config):
    log = open_log(config)
    assert len(log.window("m", 1)) == 0 and log.count("m") == 0
    assert not backends_of(config).database.exists()


def device_row(i: int, client: str = "key:phone"):
    return replace(record(i, source="device"), client=client, request_id=f"phone-{i}")


def test_a_retried_device_batch_is_logged_once_per_device(config):
    log = open_log(config)
    assert log.append_once([device_row(i) for i in range(3)]) == ["phone-0", "phone-1",
                                                                  "phone-2"]
    # Retried with one more: only the new row is stored; the ids are the device's own.
    assert log.append_once([device_row(i) for i in range(4)]) == ["phone-3"]
    assert log.append_once([device_row(i) for i in range(4)]) == []
    assert log.count("m") == 4 and log.window("m", 1).sources == ["device"] * 4
    # Another device may use the same ids: they are its own.
    assert log.append_once([device_row(0, client="key:tablet")]) == ["phone-0"]
    # The database itself refuses a second row for one device and id.
    with pytest.raises(Exception):  # noqa: B017, PT011 - the driver's IntegrityError
        log.append([device_row(1)])
    assert log.count("m") == 5
    with pytest.raises(ValueError, match="device rows"):
        log.append_once([record(9)])


def test_unknown_source_is_refused_and_nothing_written(config):
    log = open_log(config)
    with pytest.raises(InvalidInput, match="unknown prediction source"):
        log.append([record(1), record(2, source="email")])
    assert log.count("m") == 0


WRITER = textwrap.dedent("""
    import sys
    from core.app import build_backends
    from core.config import load_config
    from tests.log_rows import record
    log = build_backends(load_config()).prediction_log
    worker = int(sys.argv[2])
    for i in range(150):
        log.append([record(i, version=worker, source="simulation:none")])
""")


def test_concurrent_writer_processes_lose_and_tear_nothing(config):
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, "-", str(worker)],
                                  cwd=PROJECT_ROOT, env=environment_of(config))
                 for worker in range(1, 5)]
    assert [p.wait(timeout=240) for p in processes] == [0, 0, 0, 0]
    log = open_log(config)
    assert log.count("m") == 600
    for worker in range(1, 5):
        window = log.window("m", worker)
        assert len(window) == 150
        assert sorted(window.predicted) == sorted(i % 10 for i in range(150))
        # No torn rows: every blob decodes to the values written.
        np.testing.assert_allclose(window.probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert window.embeddings.shape == (150, 16)
        np.testing.assert_allclose(window.embeddings[:, 1] - window.embeddings[:, 0], 1.0)


def give_label(log, prediction_id: int, label: int) -> None:
    """A signed-in viewer's label (it counts at once)."""
    log.record_label("m", prediction_id, label, by=Actor("vic", "viewer"),
                     at="2026-01-02T00:00:00+00:00", counted=True, class_name=f"c{label}")


def test_feedback_labels_and_labelled_images(config):
    log = open_log(config)
    log.append([record(1, source="upload"), record(2, source="simulation:blur", true_label=4),
                record(3, source="simulation:noise", true_label=5), record(4, source="cli")])
    give_label(log, 1, 7)
    images, labels, sources = log.labelled_images("m", ("upload", "simulation:blur"))
    assert images == [b"png-1", b"png-2"] and labels.tolist() == [7, 4]
    assert sources == ["upload", "simulation:blur"]
    assert log.labelled_images("m", ("simulation",))[2] == ["simulation:blur",
                                                            "simulation:noise"]
    with pytest.raises(InvalidInput, match="no prediction 99"):
        give_label(log, 99, 1)


def test_images_of_none_of_the_classes_are_evidence_not_training_data(config):
    log = open_log(config)
    scored = replace(record(2, version=2, source="api"), ood_score=0.4)
    log.append([record(1, source="upload"), scored, record(3, version=2, source="camera")])
    assert [log.version_of("m", i) for i in (1, 2, 3)] == [1, 2, 2]
    with pytest.raises(InvalidInput, match="no prediction 99"):
        log.version_of("m", 99)
    for prediction_id in (1, 2, 3):
        give_label(log, prediction_id, NONE_OF_THESE)
    give_label(log, 3, 6)  # a later label replaces it
    assert log.labelled_images("m", ("upload", "api", "camera"))[1].tolist() == [6]
    assert log.none_of_these_scores("m", 2).tolist() == [pytest.approx(0.4)]
    assert np.isnan(log.none_of_these_scores("m", 1)).tolist() == [True]  # not scored
    assert log.window("m", 2).true_labels.tolist() == [NONE_OF_THESE, 6]
    with log.database.write() as conn:  # retention keeps what people labelled
        assert log.delete_before(conn, "m", "2027", 100) == (0, 0)


def test_images_are_kept_beside_the_rows_one_pack_per_append(config):
    log = open_log(config)
    ids = log.append([record(i, source="upload") for i in range(3)])
    ids += log.append([record(3, source="upload", model="other")])
    assert log.images("m", ids[:3][::-1]) == [(b"png-2", -1), (b"png-1", -1), (b"png-0", -1)]
    assert log.images("other", ids[3:]) == [(b"png-3", -1)]
    assert log.database.read("SELECT SUM(LENGTH(pixels)) FROM predictions")[0][0] == 0
    (pack,) = log.logged_images.packs("m")
    assert pack.latest.isoformat() == "2026-01-01T00:00:02+00:00"  # its newest row's time
    assert pack.name.startswith("2026-01-01/") and pack.size == len(b"png-0png-1png-2")


def test_retention_removes_images_no_row_refers_to_and_keeps_labelled_ones(config):
    from datetime import datetime

    log = open_log(config)
    old = log.append([record(i, source="upload") for i in range(3)])
    (new,) = log.append([record(9, source="upload", at="2026-03-01T00:00:00.000+00:00")])
    give_label(log, old[1], 4)
    orphan = log.logged_images.write("m", [b"never committed"], datetime(2026, 1, 5,
                                                                         tzinfo=UTC))
    cutoff = "2026-02-01T00:00:00+00:00"
    with log.database.write() as conn:
        assert log.delete_before(conn, "m", cutoff, 100) == (2, 0)
    assert log.sweep_images("m", cutoff).packs_removed == 0  # all written just now: wait
    swept = log.sweep_images("m", cutoff, grace_seconds=0)
    assert (swept.packs_removed, swept.images_kept) == (2, 1)
    assert swept.bytes_removed == len(b"png-0png-1png-2never committed")
    assert orphan[0].pack not in [pack.name for pack in log.logged_images.packs("m")]
    assert log.images("m", [old[1], new]) == [(b"png-1", 4), (b"png-9", -1)]
    assert [pack.labelled for pack in log.logged_images.packs("m")] == [True, False]
    assert log.sweep_images("m", cutoff, grace_seconds=0).packs_removed == 0


# --- writers killed in the middle of a burst ------------------------------------------------

BURST = textwrap.dedent("""
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    from core.app import build_backends, predict_image
    from core.config import load_config
    from tests.log_rows import record
    root, mode, image = sys.argv[1], sys.argv[2], Path(sys.argv[3]).read_bytes()
    backends = build_backends(load_config().with_overrides(registry_dir=Path(root)))
    log = backends.prediction_log
    while True:
        if mode == "uploads":  # one row per prediction, as the dashboard and CLI log
            prediction, _ = predict_image(backends, image, actor="anonymous",
                                          source="cli", now=datetime.now(timezone.utc))
            ids = [prediction.log_id]
        else:  # batches of 50 rows in one transaction, as a simulation logs
            ids = log.append([record(i, source="simulation:noise") for i in range(50)])
        # Printed only once committed: a line read here is an acknowledged write.
        print(ids[0], ids[-1], flush=True)
""")
BURST_KILLS = 4


def test_no_acknowledged_row_is_lost_when_writers_are_killed(registry_copy, tmp_path):
    from tests.conftest import fashion_test_images
    from tests.consistency import assert_consistent, kill_after, kill_moments

    image = tmp_path / "boot.png"
    image.write_bytes(encode_png(fashion_test_images(1)[0][0]))
    acknowledged = set()
    for moment in kill_moments(random.Random(11), BURST_KILLS, 0.0, 1.0):
        writers = [subprocess.Popen([sys.executable, "-c", BURST, str(registry_copy.registry_dir),
                                     mode, str(image)], cwd=PROJECT_ROOT,
                                    stdout=subprocess.PIPE, text=True,
                                    env=environment_of(registry_copy))
                   for mode in ("uploads", "batches")]
        # Both are writing (each acknowledged a first write) before the clock starts.
        lines = [[writer.stdout.readline()] for writer in writers]
        kill_after(writers[0], moment)
        kill_after(writers[1], 0.0)
        for writer, read in zip(writers, lines):
            read += writer.stdout.readlines()
            for line in read:
                if line.endswith("\n"):  # a line cut by the kill acknowledged nothing
                    first, last = map(int, line.split())
                    acknowledged.update(range(first, last + 1))
        assert_consistent(registry_copy, acknowledged)
    assert len(acknowledged) > BURST_KILLS * 100  # the kills landed in real bursts
    log = open_log(registry_copy)
    window = log.window("m", 1)  # the batch writer's rows decode whole: none is torn
    np.testing.assert_allclose(window.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Every committed row's image is there, whole: its pack was written before the row.
    by_model: dict[str, list[int]] = {}
    for prediction, model in log.database.read("SELECT id, model FROM predictions"):
        by_model.setdefault(model, []).append(prediction)
    assert sorted(by_model) == sorted({"m", registry_copy.model_name})
    for model, rows in by_model.items():
        images = log.images(model, rows)
        assert len(images) == len(rows) and all(image for image, _ in images)
