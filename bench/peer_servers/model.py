"""What every peer does with an image: decode, resize, scale, run the TFLite model."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


class TFLiteClassifier:
    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=os.environ["PEER_TFLITE"], num_threads=1)
        self.runner = interpreter.get_signature_runner("serving_default")
        self.size = (int(os.environ["PEER_WIDTH"]), int(os.environ["PEER_HEIGHT"]))
        self.mode = "L" if os.environ["PEER_CHANNELS"] == "1" else "RGB"

    def pixels(self, image: Image.Image) -> np.ndarray:
        array = np.asarray(image.convert(self.mode).resize(self.size, Image.Resampling.BILINEAR),
                           np.float32) / 255
        return array[..., None] if array.ndim == 2 else array

    def probabilities(self, images: list[Image.Image]) -> list[list[float]]:
        batch = np.stack([self.pixels(image) for image in images])
        return self.runner(image=batch)["probabilities"].tolist()

    def probabilities_of_files(self, files: list[bytes]) -> list[list[float]]:
        return self.probabilities([Image.open(io.BytesIO(data)) for data in files])
