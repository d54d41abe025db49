"""A model trained elsewhere, at the size of a real vision model: a MobileNetV2 (alpha 1.0,
``weights=None``: the ImageNet weights cost the same and cannot be downloaded here) at
224x224 RGB nested in a ``Sequential``, as the course notebook builds it, registered with
``python -m core register``'s use case on a generated folder of colour photos.

Rows: the registration (load, adapt, evaluate, reference profile, SavedModel + TFLite,
parity check) against the conversion alone (what any registry that serves TFLite does),
and one image through the product's prediction path against Keras on the same model.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.suite import Context, now
from bench.timing import Row, measure
from core.app import build_backends, register_model
from core.ml.images import decode_image, preprocess

SIZE = 224


def own_model_rows(context: Context) -> list[Row]:
    import keras

    from core.ml.exports import save_artifacts
    from core.ml.imported import adapt, load_foreign_model, parse_input_range
    from tests import imported_models

    work = Path(tempfile.mkdtemp(prefix="own-model-"))
    try:
        folder = imported_models.colour_folder(work / "photos")  # 120 photos, 3 classes
        keras.utils.set_random_seed(0)
        backbone = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3),
                                                  include_top=False, weights=None)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), backbone,
                                  keras.layers.GlobalAveragePooling2D(),
                                  keras.layers.Dense(3, activation="softmax")])
        model.save(work / "mobilenet_v2.keras")
        config = context.config.with_overrides(registry_dir=work / "registry",
                                               model_name="own")
        backends = build_backends(config)
        started = time.perf_counter()
        result = register_model(backends, work / "mobilenet_v2.keras",
                                dataset_spec=f"folder:{folder}", actor="bench", now=now(),
                                reason="bench", input_range="-1,1")
        registration = time.perf_counter() - started
        # The baseline: the conversion alone, on the same adapted model.
        foreign = load_foreign_model(work / "mobilenet_v2.keras")
        sample = preprocess(imported_models.folder_arrays(folder)[0][0],
                            result.version.metadata.spec)[None]
        adapted, _ = adapt(foreign, parse_input_range("-1,1"), sample)
        (work / "converted").mkdir()
        started = time.perf_counter()
        save_artifacts(adapted, work / "converted")
        conversion = time.perf_counter() - started
        rows = [Row(f"registration of a {SIZE}x{SIZE} MobileNetV2 trained elsewhere "
                    f"(120-photo folder)", registration, "s",
                    "SavedModel + TFLite conversion alone", conversion,
                    conversion / registration, "informational", True,
                    f"{backbone.count_params() / 1e6:.1f} M parameters; serving agreement "
                    f"{result.serving_agreement:.2%}")]
        return rows + _latency_rows(context, backends, result.version, folder, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _latency_rows(context: Context, backends, version, folder: Path, model) -> list[Row]:
    predictor = backends.models.predictor(version)
    png = next(folder.rglob("*.png")).read_bytes()
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
