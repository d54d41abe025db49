"""A model trained elsewhere, at the size of a real vision model: a MobileNetV2 (alpha 1.0,
``weights=None``: the ImageNet weights cost the same and cannot be downloaded here) at
224x224 RGB nested in a ``Sequential``, as the course notebook builds it, registered with
``python -m core register``'s use case on a generated folder of colour photos.

Rows: the registration (load, adapt, evaluate, reference profile, SavedModel + TFLite,
parity check) against the conversion alone (what any registry that serves TFLite does);
one image through the product's prediction path against Keras on the same model; the
int8 export against the float one; Grad-CAM through the nested backbone, the drift report
over 10,000 logged predictions with 1,280-d embeddings, the OOD score and the bytes one
logged prediction costs in the database, each against the default 28x28 model's figure.
The photos are noisy 224x224 JPEGs (``bench.folder_training.make_photos``): what a
logged image costs depends on how much detail it has.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from functools import partial
from pathlib import Path

import numpy as np

from bench.folder_training import make_photos
from bench.suite import Context, now
from bench.timing import Row, measure
from core.app import Backends, build_backends, drift_for_version, register_model, simulate
from core.ml.images import decode_image, preprocess
from core.monitoring.logged_images import PREFIX as LOGGED_IMAGES
from tests.serving.clients import BOUNDARY, multipart

SIZE = 224
PHOTOS = 300
LOGGED = 10_000  # predictions simulated: the drift report's window
MODEL = "own"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def own_model_rows(context: Context) -> list[Row]:
    from core.ml.exports import save_artifacts
    from core.ml.imported import adapt, load_foreign_model, parse_input_range

    work = Path(tempfile.mkdtemp(prefix="own-model-"))
    try:
        folder = make_photos(work / "photos", PHOTOS)
        model, backbone = mobilenet(work / "mobilenet_v2.keras")
        started = time.perf_counter()
        backends, result = register_own(context, work / "mobilenet_v2.keras", folder)
        registration = time.perf_counter() - started
        # The baseline: the conversion alone, on the same adapted model.
        foreign = load_foreign_model(work / "mobilenet_v2.keras")
        first = decode_image(next(folder.rglob("*.jpg")).read_bytes(), max_bytes=1 << 24,
                             max_pixels=1 << 24).pixels
        sample = preprocess(first, result.version.metadata.spec)[None]
        adapted, _ = adapt(foreign, parse_input_range("-1,1"), sample)
        (work / "converted").mkdir()
        started = time.perf_counter()
        save_artifacts(adapted, work / "converted")
        conversion = time.perf_counter() - started
        rows = [Row(f"registration of a {SIZE}x{SIZE} MobileNetV2 trained elsewhere "
                    f"({PHOTOS}-photo folder)", registration, "s",
                    "SavedModel + TFLite conversion alone", conversion,
                    conversion / registration, "informational", True,
                    f"{backbone.count_params() / 1e6:.1f} M parameters; serving agreement "
                    f"{result.serving_agreement:.2%}")]
        rows += _latency_rows(context, backends, result.version, folder, model)
        rows.append(_api_row(context, backends, result.version, folder, work))
        rows += _int8_rows(context, backends, result.version, work)
        return rows + _at_size_rows(context, backends, result.version)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mobilenet(path: Path):
    """The model, saved to ``path``, and its backbone."""
    import keras

    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3),
                                              include_top=False, weights=None)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), backbone,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.save(path)
    return model, backbone


def register_own(context: Context, path: Path, photos: Path):
    """``path`` registered as a second model, ``own``, in the row's private registry (whose
    user "bench" is an admin): its backends and the registration's result."""
    backends = build_backends(context.config.with_overrides(model_name=MODEL))
    return backends, register_model(backends, path, dataset_spec=f"folder:{photos}",
                                    actor="bench", now=now(), reason="bench",
                                    input_range="-1,1")


def _latency_rows(context: Context, backends, version, folder: Path, model) -> list[Row]:
    predictor = backends.models.predictor(version)
    png = next(folder.rglob("*.jpg")).read_bytes()
    spec = predictor.input_spec

    def ours():
        started = time.perf_counter()
        predictor.predict_decoded(decode_image(png, max_bytes=1 << 24, max_pixels=1 << 24),
                                  started)

    pixels = decode_image(png, max_bytes=1 << 24, max_pixels=1 << 24).pixels
    x = preprocess(pixels, spec)[None] * 2.0 - 1.0  # the original takes [-1, 1]
    serving = measure(ours, repeats=context.repeats)
    keras_predict = measure(lambda: model.predict(x, verbose=0), repeats=context.repeats // 4)
    keras_call = measure(lambda: model(x, training=False), repeats=context.repeats // 2)
    ratio = keras_predict.median / serving.median
    return [Row(f"one-image prediction, {SIZE}x{SIZE} MobileNetV2 (decode + preprocess + "
                "TFLite float)", serving.median * 1000, "ms", "Keras model.predict",
                keras_predict.median * 1000, ratio, "faster than model.predict", ratio > 1,
                f"model(x): {keras_call.median * 1000:.1f} ms "
                f"({keras_call.median / serving.median:.1f}x ours)")]


def _api_row(context: Context, backends: Backends, version, folder: Path, work: Path) -> Row:
    """``/v1/predict?model=own`` with a 224x224 JPEG, logged, 2 workers, wrk at 8
    connections, against the bare runtime: the version's TFLite model invoked in a loop on
    one core (one thread, no decode, no HTTP), times the two cores."""
    from bench.http_serving import WORKERS, _ours, launched, wrk
    from core.ml.images import preprocess_batch

    spec = version.metadata.spec
    photo = next(folder.rglob("*.jpg")).read_bytes()
    predictor = backends.models.predictor(version)
    x = preprocess_batch(np.asarray([decode_image(photo, max_bytes=1 << 24,
                                                  max_pixels=1 << 24).pixels]), spec)
    one = measure(partial(predictor.predict_batch, x), repeats=context.repeats)
    limit = WORKERS / one.median
    body = work / "photo.multipart"
    body.write_bytes(multipart(photo))
    command, env = _ours(context.config.registry_dir)
    seconds = 5 if context.quick else 15
    with launched(command, env, "/readyz") as server:
        url = server.url
        wrk(f"{url}/v1/predict?model=own", body, CONTENT_TYPE, 8, 3)  # warm-up
        rate = wrk(f"{url}/v1/predict?model=own", body, CONTENT_TYPE, 8, seconds)
    share = rate / limit
    return Row(f"API throughput, {SIZE}x{SIZE} MobileNetV2, /v1/predict with a JPEG, every "
               f"answer logged ({WORKERS} workers, wrk -c 8)", rate, "req/s",
               f"bare runtime: TFLite invoke x {WORKERS} cores, no decode or HTTP", limit,
               share, ">= 70 % of the bare runtime", share >= 0.7,
               f"one invoke {one.median * 1000:.2f} ms")


def _int8_rows(context: Context, backends: Backends, version, work: Path) -> list[Row]:
    """The int8 export (calibrated on the version's own photos) against the float model."""
    from core.ml.data import load_version_dataset
    from core.ml.exports import SAVED_MODEL_DIR, TFLITE_FILE, build_portable, export_runner
    from core.ml.images import preprocess_batch

    folder = backends.registry.files(version.version)
    dataset = load_version_dataset(version.metadata, backends.config.fashion_mnist_dir)
    calibration = preprocess_batch(dataset.train.images[:100], version.metadata.spec)
    (work / "portable").mkdir()
    portable = build_portable(folder / SAVED_MODEL_DIR, calibration, work / "portable")
    x = calibration[:1]
    runs = {fmt: export_runner(fmt, path) for fmt, path in
            (("tflite", folder / TFLITE_FILE), ("tflite_int8", portable["tflite_int8"]))}
    timed = {fmt: measure(partial(run, x), repeats=context.repeats)
             for fmt, run in runs.items()}
    agree = float(np.mean(runs["tflite_int8"](calibration).argmax(axis=1)
                          == runs["tflite"](calibration).argmax(axis=1)))
    ratio = timed["tflite"].median / timed["tflite_int8"].median
    return [Row(f"one-image inference, {SIZE}x{SIZE} MobileNetV2, TFLite int8",
                timed["tflite_int8"].median * 1000, "ms", "TFLite float",
                timed["tflite"].median * 1000, ratio, "informational", True,
                f"int8 {portable['tflite_int8'].stat().st_size / 2**20:.1f} MB against float "
                f"{(folder / TFLITE_FILE).stat().st_size / 2**20:.1f} MB; agrees with float on "
                f"{agree:.0%} of 100 training photos")]


def _at_size_rows(context: Context, backends: Backends, version) -> list[Row]:
    """Grad-CAM, drift, OOD and log bytes at 224x224x3 against the default model's."""
    small = build_backends(context.config)
    champion = small.registry.get_champion()
    rows = [_gradcam_row(context, backends, version, small, champion),
            _ood_row(context, backends, version, small, champion)]
    bytes_big, beside_big, seconds_big = _logged_bytes(backends, LOGGED)
    bytes_small, beside_small, _ = _logged_bytes(small, 2_000)
    rows.append(Row(f"bytes per logged prediction in the database, {SIZE}x{SIZE} RGB",
                    bytes_big, "B", "the default 28x28 model's", bytes_small,
                    bytes_small / bytes_big, "informational (the image is beside it)", True,
                    f"{LOGGED:,} simulated predictions in {seconds_big:.0f} s; 10 million "
                    f"would take {bytes_big * 1e7 / 1e9:.0f} GB of database"))
    rows.append(Row(f"bytes per logged image beside the database (packs in the artifact "
                    f"store), {SIZE}x{SIZE} RGB", beside_big, "B", "the default 28x28 model's",
                    beside_small, beside_small / beside_big,
                    "informational (JPEG q95 above 128x128, PNG below)", True,
                    f"10 million would take {beside_big * 1e7 / 1e9:.0f} GB in the store"))
    started = time.perf_counter()
    report = drift_for_version(backends, actor="bench", now=now(), window=LOGGED)
    big = time.perf_counter() - started
    started = time.perf_counter()
    drift_for_version(small, actor="bench", now=now(), window=2_000)
    dimensions = backends.models.predictor(version).embedding_size
    small_dimensions = small.models.predictor(champion).embedding_size
    rows.append(Row(f"drift report over {report.n:,} logged predictions, "
                    f"{dimensions}-d embeddings", big, "s",
                    f"the default model's over 2,000 ({small_dimensions}-d)",
                    time.perf_counter() - started, None, "informational", True))
    return rows


def _gradcam_row(context: Context, backends: Backends, version, small: Backends,
                 champion) -> Row:
    x = np.zeros((SIZE, SIZE, 3), np.float32) + 0.5
    gradcam = backends.models.gradcam(version)
    gradcam.heatmap(x)  # compiles
    big = measure(lambda: gradcam.heatmap(x), repeats=max(3, context.repeats // 10))
    spec = champion.metadata.spec
    small_cam = small.models.gradcam(champion)
    y = np.zeros((spec.height, spec.width, spec.channels), np.float32) + 0.5
    small_cam.heatmap(y)
    base = measure(lambda: small_cam.heatmap(y), repeats=max(3, context.repeats // 10))
    return Row(f"Grad-CAM of one image through the nested {SIZE}x{SIZE} MobileNetV2",
               big.median * 1000, "ms", "the default 28x28 CNN's", base.median * 1000,
               None, "informational", True)


def _ood_row(context: Context, backends: Backends, version, small: Backends, champion) -> Row:
    big = backends.models.predictor(version).ood
    tiny = small.models.predictor(champion).ood
    assert big is not None and tiny is not None
    one, other = np.asarray(big.bank[:1], np.float32), np.asarray(tiny.bank[:1], np.float32)
    scored = measure(lambda: big.scores(one), repeats=context.repeats)
    base = measure(lambda: tiny.scores(other), repeats=context.repeats)
    return Row(f"OOD score of one image ({one.shape[1]}-d embedding, k-NN over "
               f"{len(big.bank):,} training photos)", scored.median * 1000, "ms",
               f"the default model's ({other.shape[1]}-d over {len(tiny.bank):,})",
               base.median * 1000, None, "informational", True)


def _logged_bytes(backends: Backends, n: int) -> tuple[float, float, float]:
    """Bytes per prediction in the database and beside it (its image), and the seconds
    ``n`` predictions simulated through the champion took."""
    database = backends.config.registry_dir / "registry.db"
    packs = f"{LOGGED_IMAGES}/{backends.model}/"

    def beside() -> int:
        return sum(item.size for item in backends.artifacts.list_objects(packs))

    def size() -> int:
        with closing(sqlite3.connect(database)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages, page = db.execute("PRAGMA page_count").fetchone()[0], db.execute(
                "PRAGMA page_size").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            return (pages - free) * page

    before, before_beside = size(), beside()
    started = time.perf_counter()
    simulate(backends, actor="bench", scenario="none", n=n, clock=now)
    seconds = time.perf_counter() - started
    return (size() - before) / n, (beside() - before_beside) / n, seconds
