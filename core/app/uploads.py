"""Uploads decoded within a budget: what one request, and one process, may decode at once.

A 1.6 KB lossless WebP of 6,324 x 6,324 pixels decodes to 120 MB in 1.2 s. A cap per
image does not bound a process: 256 of them in one request, or a hundred requests at
once, would ask for tens of gigabytes. So every front end (dashboard, CLI, API) decodes
through the one ``ImageDecoder`` of its process:

- every image's header is read first, so what decoding costs is known before any of it
  is paid (a JPEG at the reduced scale its decoder will use);
- one request decodes at most ``MAX_REQUEST_PIXELS`` (more: ``RequestTooLarge``, 413);
- one process has at most ``MAX_PIXELS_IN_FLIGHT`` reserved at once, held until the
  request that reserved them ends (more: ``Overloaded``, 503 with ``Retry-After``, at
  once for the API; after a short wait for a dashboard visitor);
- images over ``INLINE_PIXELS`` are decoded in a separate process: a big decode holds
  Python's lock for up to half a second (the 6,324-pixel WebP did), which would stall
  every other request of the process, ``/healthz`` included. Smaller ones (a 12-MP
  phone JPEG decodes at 3 MP) are decoded in the calling thread, where a hop to another
  process would cost more than the decode.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager

from core.config import Config
from core.errors import Overloaded, RequestTooLarge
from core.ml.images import DecodedImage, OpenedImage, decode_image, open_image

LOGGER = logging.getLogger("core.uploads")
# Decoded in the calling thread up to this many pixels (measured: a 4-MP WebP, PNG,
# JPEG, TIFF, GIF or BMP holds Python's lock under 5 ms at a time).
INLINE_PIXELS = 4_000_000
DECODE_PROCESSES = 2


class PixelBudget:
    """The decoded pixels one process may hold at once, shared by its requests."""

    def __init__(self, per_request: int, in_flight: int):
        self.per_request, self.in_flight = per_request, in_flight
        self._used = 0
        self._freed = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def request(self, wait: float = 0.0) -> Iterator[RequestPixels]:
        """One request's share: what it takes is given back when the block ends.

        Args:
            wait: seconds to wait for room before ``Overloaded`` (0: refuse at once).
        """
        pixels = RequestPixels(self, wait)
        try:
            yield pixels
        finally:
            with self._freed:
                self._used -= pixels.taken
                self._freed.notify_all()

    def _acquire(self, pixels: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        with self._freed:
            while self._used + pixels > self.in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Overloaded(
                        f"this server is decoding {self._used:,} pixels for other requests; "
                        f"{pixels:,} more would pass its limit of {self.in_flight:,} "
                        "(MAX_PIXELS_IN_FLIGHT). To fix this, retry in a moment (or raise "
                        "MAX_PIXELS_IN_FLIGHT on a machine with more memory).",
                        retry_after=1)
                self._freed.wait(remaining)
            self._used += pixels


class RequestPixels:
    """What one request has taken of a ``PixelBudget``."""

    def __init__(self, budget: PixelBudget, wait: float):
        self.budget, self.wait = budget, wait
        self.taken = 0

    def take(self, pixels: int, what: str) -> None:
        """Reserves ``pixels`` for ``what`` (e.g. "the request's 3 images")."""
        limit = self.budget.per_request
        if self.taken + pixels > limit:
            raise RequestTooLarge(
                f"{what} would decode to {self.taken + pixels:,} pixels, over the limit of "
                f"{limit:,} per request. To fix this, send fewer or smaller images per "
                "request (or raise MAX_REQUEST_PIXELS).")
        self.budget._acquire(pixels, self.wait)
        self.taken += pixels


class ImageDecoder:
    """Decodes uploads for one process within its ``PixelBudget`` (see the module)."""

    def __init__(self, config: Config):
        self.max_bytes, self.max_pixels = config.max_upload_bytes, config.max_image_pixels
        self.budget = PixelBudget(config.max_request_pixels, config.max_pixels_in_flight)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def request(self, wait: float = 0.0) -> AbstractContextManager[RequestPixels]:
        """A request's share of the budget (a context manager yielding ``RequestPixels``)."""
        return self.budget.request(wait)

    def decode(self, files: Sequence[bytes], pixels: RequestPixels) -> list[DecodedImage]:
        """Decodes ``files`` after checking every header and reserving their pixels.

        Raises:
            ImageError: a file is not a usable image (nothing is decoded).
            RequestTooLarge: together they pass MAX_REQUEST_PIXELS (nothing is decoded).
            Overloaded: the process has no room now (nothing is decoded).
        """
        opened = [open_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
                  for data in files]
        what = "the image" if len(opened) == 1 else f"the request's {len(opened)} images"
        pixels.take(sum(image.decoded_pixels for image in opened), what)
        return [self._decode(image) for image in opened]

    def _decode(self, image: OpenedImage) -> DecodedImage:
        if image.decoded_pixels <= INLINE_PIXELS:
            return image.decode(self.max_pixels)
        try:
            return self._processes().submit(decode_image, image.data, max_bytes=self.max_bytes,
                                             max_pixels=self.max_pixels).result()
        except BrokenProcessPool:
            # A decoding process died (killed, out of memory): the next request gets a
            # new pool; this one is told to retry.
            LOGGER.exception("a decoding process died; starting new ones")
            with self._lock:
                self._pool = None
            raise Overloaded("the process decoding this image stopped. To fix this, retry "
                             "in a moment; if it keeps happening, the server is short of "
                             "memory (lower MAX_PIXELS_IN_FLIGHT).", retry_after=1) from None

    def _processes(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fresh interpreter importing only Pillow and numpy, never a fork
                # of a process holding TensorFlow's threads.
                self._pool = ProcessPoolExecutor(
                    DECODE_PROCESSES, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
