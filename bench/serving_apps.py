"""The HTTP servers the serving benchmark compares, as uvicorn app factories.

- ``hello_app``: the ceiling. The same stack (FastAPI on uvicorn, same workers) with an
  endpoint that reads the request body and answers a constant: the HTTP floor.
- ``seed_app``: the pattern of the course chapter this product grew out of, written
  from its description: FastAPI, the SavedModel loaded with TensorFlow, and
  ``model.signatures["serving_default"]`` called per request on the uploaded image.
- ``ours_without_log``: our API with the prediction log switched off, only to measure
  what logging costs (the product always logs).

Started by ``bench/http_serving.py`` with ``uvicorn --factory``; settings come from the
environment because uvicorn's worker processes call the factory without arguments.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
from fastapi import FastAPI, File, Request, UploadFile


def hello_app() -> FastAPI:
    app = FastAPI()

    @app.post("/hello")
    async def hello(request: Request) -> dict:
        await request.body()
        return {"hello": "world"}

    return app


def seed_app() -> FastAPI:
    import tensorflow as tf
    from PIL import Image

    model = tf.saved_model.load(os.environ["SEED_SAVED_MODEL"])
    infer = model.signatures["serving_default"]
    class_names = json.loads(os.environ["SEED_CLASS_NAMES"])
    height, width = int(os.environ["SEED_HEIGHT"]), int(os.environ["SEED_WIDTH"])
    app = FastAPI()

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)) -> dict:
        image = Image.open(io.BytesIO(await file.read())).convert("L").resize((width, height))
        x = np.asarray(image, np.float32)[None, :, :, None] / 255.0
        probabilities = infer(tf.constant(x))["probabilities"].numpy()[0]
        best = int(probabilities.argmax())
        return {"label": class_names[best], "confidence": float(probabilities[best])}

    return app


def ours_without_log() -> FastAPI:
    from core.serving.api import create_app

    return create_app(log_predictions=False)
