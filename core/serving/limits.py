"""The body's size limit, enforced before anything reads the body."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.app import ServingSession
from core.app.vocabulary import ANONYMOUS
from core.config import Config
from core.errors import RequestTooLarge
from core.serving.bookkeeping import answer_error, count

# JSON carries an image as base64 (4/3 of its size); leave room for the rest of the body.
BODY_OVERHEAD = 64 * 1024


def body_limit(config: Config) -> int:
    return config.max_upload_bytes * 4 // 3 + BODY_OVERHEAD


class BodyTooLarge(RequestTooLarge):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the request body is over {size:,} bytes, over the limit of "
                         f"{limit:,}. To fix this, send a smaller image (the limit follows "
                         "MAX_UPLOAD_BYTES).")


class BodyLimit:
    """Answers 413 to a body over ``limit`` bytes before anything reads it."""

    def __init__(self, app: ASGIApp, limit: int, session: ServingSession):
        self.app, self.limit, self.session = app, limit, session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send, BodyTooLarge(int(length), self.limit))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(received, self.limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge as error:  # raised outside a model route's own handling
            await self._refuse(scope, receive, send, error)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send,
                      error: BodyTooLarge) -> None:
        started = time.perf_counter()
        response = await answer_error(self.session, error, request_id=uuid.uuid4().hex,
                                      client=ANONYMOUS, started=started)
        count(self.session.default_model, 413, None, None, started)
        await response(scope, receive, send)
