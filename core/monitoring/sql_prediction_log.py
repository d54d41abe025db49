"""The prediction log in the registry's database (``core.storage``: SQLite or
PostgreSQL), its images beside it (``core.monitoring.logged_images``).

Each ``append`` writes its images' pack, then its rows in one transaction, so rows are
never torn and never point at a missing image; concurrent writers wait for the lock
(busy timeout) instead of failing or losing rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from core.audit import Actor, AuditEntry, append
from core.errors import InvalidInput
from core.ml.images import encode_logged
from core.monitoring.log_records import (
    ERROR_KINDS,
    NONE_OF_THESE,
    SOURCE_KINDS,
    VARIANTS,
    FailedRequest,
    Label,
    PredictionRecord,
    RequestRow,
    Window,
    check_source,
)
from core.monitoring.logged_images import LABELLED, ImageRef, LoggedImages, day_ended_by
from core.monitoring.prediction_log import (
    LABELLED_PACK_IMAGES,
    SWEEP_GRACE_SECONDS,
    ImageSweep,
    PredictionLog,
)
from core.storage import schema
from core.storage.database import Database

_COLUMNS = ("at", "model", "version", "source", "predicted", "label", "confidence",
            "probabilities", "latency_ms", "brightness", "contrast", "sharpness", "width",
            "height", "embedding", "true_label", "pixels", "request_id", "client", "variant",
            "ood_score", "server_request_id", "instance", "image_pack", "image_offset",
            "image_length", "trace_id")
# Where a row's image is: ``pixels`` holds it in rows logged before images were kept
# beside the log (empty since); the pack's name, offset and length say where otherwise.
_IMAGE_COLUMNS = "pixels, image_pack, image_offset, image_length"
_FAILURE_COLUMNS = ("at", "model", "version", "variant", "status", "error_kind",
                    "latency_ms", "client", "request_id", "trace_id")


_INSERT_MANY = schema.predictions.insert().returning(schema.predictions.c.id,
                                                    sort_by_parameter_order=True)
_INSERT_FAILURE = text(f"INSERT INTO request_failures ({', '.join(_FAILURE_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in _FAILURE_COLUMNS)})")


def _insert(conn: Connection, rows: list[dict]) -> list[int]:
    if not rows:
        return []
    # One multi-row INSERT ... RETURNING (SQLAlchemy's "insertmanyvalues"): ~5x cheaper
    # per row than a statement each; ids come back in row order.
    return list(conn.execute(_INSERT_MANY, rows,
                             execution_options={"sort_by_parameter_order": True}).scalars())


def _check_failure(failure: FailedRequest) -> dict:
    if failure.error_kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {failure.error_kind!r}")
    return {c: getattr(failure, c) for c in _FAILURE_COLUMNS}


class SQLPredictionLog(PredictionLog):
    """The log in the registry's database (any database ``core.storage`` supports), its
    images in ``images``.

    Args:
        write_wait: seconds an append waits for another writer before ``Overloaded``:
            requests wait on appends, so a locked database is a quick 503, not a minute.
    """

    def __init__(self, database: Database, images: LoggedImages, write_wait: float = 5.0):
        self.database, self.logged_images, self.write_wait = database, images, write_wait

    def append(self, records: list[PredictionRecord],
               failures: Sequence[FailedRequest] = ()) -> list[int]:
        failure_rows = [_check_failure(f) for f in failures]
        rows = self._rows(records)
        # NORMAL: a killed process loses nothing committed; the registry's own
        # decisions keep FULL. Predictions are frequent, decisions rare.
        with self.database.write(synchronous="NORMAL", wait=self.write_wait) as conn:
            if failure_rows:
                conn.execute(_INSERT_FAILURE, failure_rows)
            return _insert(conn, rows)

    def append_once(self, records: list[PredictionRecord]) -> list[str]:
        # Write transactions take turns on both databases (core.storage.database): the
        # check inside one cannot race another sync (the unique index guards it anyway).
        if len({r.client for r in records}) > 1 or any(
                r.source != "device" or not r.request_id for r in records):
            raise ValueError("append_once takes device rows of one client, each with its id")
        fresh = self._not_logged(records)
        rows = self._rows(fresh)
        with self.database.write(synchronous="NORMAL", wait=self.write_wait) as conn:
            missing = {r.request_id for r in self._not_logged(fresh, conn)}
            _insert(conn, [row for row in rows if row["request_id"] in missing])
        return [str(r.request_id) for r in fresh if r.request_id in missing]

    def _not_logged(self, records: list[PredictionRecord], conn: Connection | None = None
                    ) -> list[PredictionRecord]:
        """The device records whose (client, id) has no row yet."""
        ids = {f"id{i}": r.request_id for i, r in enumerate(records)}
        query = ("SELECT request_id FROM predictions WHERE source = 'device' AND client = "
                 f":client AND request_id IN ({', '.join(':' + k for k in ids)})")
        parameters = {"client": records[0].client, **ids} if records else {}
        found = ([] if not records else self.database.read(query, parameters) if conn is None
                 else conn.execute(text(query), parameters).all())
        logged = {row[0] for row in found}
        return [r for r in records if r.request_id not in logged]

    def _rows(self, records: list[PredictionRecord]) -> list[dict]:
        """The records as table rows, their images written to a pack first, outside the
        database's lock: a committed row never points at a missing pack (a pack whose
        rows never commit is swept by retention)."""
        for r in records:
            check_source(r.source)
            _check_variant(r.variant)
        refs: dict[int, ImageRef] = {}  # by the record's place in ``records``
        for model in dict.fromkeys(r.model for r in records):  # one pack per model
            places = [i for i, r in enumerate(records) if r.model == model]
            refs.update(zip(places, self.logged_images.write(
                model, [_encoded(records[i].pixels) for i in places],
                max(datetime.fromisoformat(records[i].at) for i in places))))
        return [dict(zip(_COLUMNS, (
            r.at, r.model, r.version, r.source, r.predicted, r.label,
            float(r.confidence), np.asarray(r.probabilities, np.float32).tobytes(),
            float(r.latency_ms), float(r.brightness), float(r.contrast), float(r.sharpness),
            int(r.width), int(r.height),
            # float16 halves the row size; drift tests lose nothing measurable.
            np.asarray(r.embedding, np.float16).tobytes(),
            None if r.true_label is None else int(r.true_label), b"", r.request_id,
            r.client, r.variant, None if r.ood_score is None else float(r.ood_score),
            r.server_request_id, r.instance, refs[i].pack, refs[i].offset,
            refs[i].length, r.trace_id))) for i, r in enumerate(records)]

    def window(self, model: str, version: int, *, last: int | None = None,
               since: str | None = None, until: str | None = None,
               sources: Sequence[str] | None = None, max_id: int | None = None) -> Window:
        conditions = ["model = :model", "version = :version"]
        args = {"model": model, "version": version, "since": since, "until": until,
                "last": last, "max_id": max_id}
        if max_id is not None:
            # "+id": the unary plus keeps SQLite from choosing the (model, version, id)
            # index for this bound, which would scan every older row of the version
            # instead of the time range (at 10 M rows: 0.1 s per hour's window instead of
            # seconds, growing with the log).
            conditions.append("+id <= :max_id")
        if sources is not None:
            unknown = sorted(set(sources) - set(SOURCE_KINDS))
            if unknown or not sources:
                raise InvalidInput(f"unknown source kind(s) {unknown}. To fix this, choose "
                                   f"from: {', '.join(SOURCE_KINDS)}.")
            matches = [f"source = :source{i}" for i, kind in enumerate(sources)
                       if kind != "simulation"]
            args |= {f"source{i}": kind for i, kind in enumerate(sources)}
            if "simulation" in sources:
                matches.append("source LIKE 'simulation:%'")
            conditions.append(f"({' OR '.join(matches)})")
        if since is not None:
            conditions.append("at >= :since")
        if until is not None:
            conditions.append("at < :until")
        sql = (f"SELECT id, at, source, predicted, confidence, probabilities, brightness, "
               f"contrast, sharpness, embedding, true_label, latency_ms, ood_score FROM predictions "
               f"WHERE {' AND '.join(conditions)} ORDER BY id DESC")
        if last is not None:
            sql += " LIMIT :last"
            args["last"] = int(last)
        rows = self.database.read(sql, args)[::-1]
        return _rows_to_window(rows)

    def count(self, model: str, version: int | None = None) -> int:
        rows = self.database.read(
            "SELECT COUNT(*) FROM predictions WHERE model = :model"
            + ("" if version is None else " AND version = :version"),
            {"model": model, "version": version})
        return rows[0][0] if rows else 0

    def sources(self, model: str, version: int) -> list[str]:
        rows = self.database.read("SELECT DISTINCT source FROM predictions WHERE model = "
                                  ":model AND version = :version ORDER BY source",
                                  {"model": model, "version": version})
        return [row[0] for row in rows]

    def last_id(self) -> int:
        rows = self.database.read("SELECT MAX(id) FROM predictions")
        return rows[0][0] or 0 if rows else 0

    def first_at(self, model: str, since: str | None) -> str | None:
        args = {"model": model, "since": since or ""}
        rows = self.database.read(
            "SELECT MIN(first) FROM (SELECT MIN(at) AS first FROM predictions WHERE model = "
            ":model AND at >= :since UNION ALL SELECT MIN(at) FROM request_failures WHERE "
            "model = :model AND at >= :since) AS firsts", args)
        return rows[0][0] if rows else None

    def versions_between(self, model: str, since: str, until: str,
                         versions: Sequence[int]) -> list[int]:
        args = {"model": model, "since": since, "until": until}
        # Per version, so each lookup is a range of the (model, version, at) index.
        found = {v for v in versions if self.database.read(
            "SELECT 1 FROM predictions WHERE model = :model AND version = :version AND "
            "at >= :since AND at < :until LIMIT 1", args | {"version": v})}
        failed = self.database.read(
            "SELECT DISTINCT COALESCE(version, 0) FROM request_failures WHERE model = :model "
            "AND at >= :since AND at < :until", args)
        return sorted(found | {v for (v,) in failed})

    def arrived(self, model: str, after_id: int, up_to_id: int, before: str
                ) -> list[tuple[int, str]]:
        return [tuple(row) for row in self.database.read(
            "SELECT version, at FROM predictions WHERE id > :after AND id <= :upto AND "
            "model = :model AND at < :before",
            {"after": after_id, "upto": up_to_id, "model": model, "before": before})]

    def api_requests(self, model: str, since: str, until: str | None = None,
                     version: int | None = None) -> list[RequestRow]:
        args = {"model": model, "since": since, "until": until or "9999",
                "version": version}
        answered = self.database.read(
            "SELECT MIN(at), version, variant, MAX(latency_ms) FROM predictions WHERE "
            "model = :model AND source = 'api' AND at >= :since AND at < :until"
            + ("" if version is None else " AND version = :version")
            # One row per request: the server's id (a client may reuse its own ids).
            + " GROUP BY COALESCE(server_request_id, request_id), version, variant", args)
        failed = self.database.read(
            "SELECT at, version, variant, status, latency_ms, error_kind FROM "
            "request_failures WHERE model = :model AND at >= :since AND at < :until"
            + ("" if version is None else " AND COALESCE(version, 0) = :version"), args)
        rows = ([RequestRow(at, version, variant, 200, latency, None)
                 for at, version, variant, latency in answered]
                + [RequestRow(*row) for row in failed])
        return sorted(rows, key=lambda row: row.at)

    def shadow_pairs(self, model: str, champion: int, candidate: int) -> np.ndarray:
        rows = self.database.read(
            "SELECT c.id, s.id, c.predicted, s.predicted, COALESCE(c.true_label, "
            "s.true_label, -1) FROM predictions AS s JOIN predictions AS c ON "
            "c.server_request_id = s.server_request_id AND c.instance = s.instance AND "
            "c.model = s.model AND c.id != s.id WHERE s.model = :model AND "
            "s.version = :candidate AND s.variant = 'shadow' AND c.version = :champion "
            "ORDER BY s.id", {"model": model, "champion": champion, "candidate": candidate})
        return np.asarray(rows, np.int64).reshape(-1, 5)

    def variant_outcomes(self, model: str, version: int, variant: str) -> np.ndarray:
        rows = self.database.read(
            "SELECT predicted, COALESCE(true_label, -1) FROM predictions WHERE model = :model "
            "AND version = :version AND variant = :variant",
            {"model": model, "version": version, "variant": variant})
        return np.asarray(rows, np.int64).reshape(-1, 2)

    def images(self, model: str, ids: Sequence[int]) -> list[tuple[bytes, int]]:
        if not ids:
            return []
        rows = {row[0]: row[1:] for row in self.database.read(
            f"SELECT id, {_IMAGE_COLUMNS}, true_label FROM predictions WHERE model = :model "
            f"AND id IN ({', '.join(str(int(i)) for i in ids)})", {"model": model})}
        found = [rows[i] for i in ids if i in rows]
        return list(zip(self._images(model, [row[:4] for row in found]),
                        [-1 if row[4] is None else row[4] for row in found]))

    def _images(self, model: str, rows: Sequence[Sequence[Any]]) -> list[bytes]:
        """The images of rows read as ``_IMAGE_COLUMNS``: from their packs, or (rows logged
        before images were kept beside the log) from the row itself."""
        refs = [ImageRef(pack, offset, length) for _, pack, offset, length in rows
                if pack is not None]
        beside = iter(self.logged_images.read(model, refs))
        return [bytes(pixels) if pack is None else next(beside)
                for pixels, pack, _, _ in rows]

    def pack_rows(self, model: str, packs: Sequence[str]
                  ) -> dict[str, list[tuple[int, ImageRef]]]:
        found: dict[str, list[tuple[int, ImageRef]]] = {}
        for start in range(0, len(packs), 500):  # a bounded IN list per query
            chunk = {f"p{i}": pack for i, pack in enumerate(packs[start:start + 500])}
            for prediction, pack, offset, length in self.database.read(
                    "SELECT id, image_pack, image_offset, image_length FROM predictions "
                    f"WHERE image_pack IN ({', '.join(':' + k for k in chunk)}) AND "
                    "model = :model ORDER BY id", chunk | {"model": model}):
                found.setdefault(pack, []).append((prediction, ImageRef(pack, offset, length)))
        return found

    def sweep_images(self, model: str, before: str,
                     grace_seconds: float = SWEEP_GRACE_SECONDS) -> ImageSweep:
        cutoff, fresh = datetime.fromisoformat(before), time.time() - grace_seconds
        candidates = [pack for folder in self.logged_images.folders(model)
                      if folder == LABELLED or day_ended_by(folder, cutoff)
                      for pack in self.logged_images.packs(model, folder)
                      if pack.modified <= fresh]
        referred = self.pack_rows(model, [pack.name for pack in candidates])
        # A labelled pack holds only kept images: it goes once no row refers to it.
        done = [pack for pack in candidates if not pack.labelled or pack.name not in referred]
        kept = [row for pack in done for row in referred.get(pack.name, [])]
        for start in range(0, len(kept), LABELLED_PACK_IMAGES):
            chunk = kept[start:start + LABELLED_PACK_IMAGES]
            images = self.logged_images.read(model, [ref for _, ref in chunk])
            moved = self.logged_images.write(model, images, cutoff, labelled=True)
            self.move_images(model, {row: ref for (row, _), ref in zip(chunk, moved)})
        for pack in done:
            self.logged_images.delete(model, pack.name)
        return ImageSweep(len(done), sum(pack.size for pack in done), len(kept))

    def move_images(self, model: str, moved: dict[int, ImageRef]) -> None:
        with self.database.write() as conn:
            for prediction, ref in moved.items():
                conn.execute(text(
                    "UPDATE predictions SET image_pack = :pack, image_offset = :offset, "
                    "image_length = :length WHERE model = :model AND id = :id"),
                    {"model": model, "id": int(prediction), "pack": ref.pack,
                     "offset": ref.offset, "length": ref.length})

    def delete_before(self, conn: Connection, model: str, before: str, limit: int
                      ) -> tuple[int, int]:
        args = {"model": model, "before": before, "limit": limit}
        doomed = ("SELECT id FROM predictions WHERE model = :model AND at < :before AND "
                  "(true_label IS NULL OR source LIKE 'simulation:%') ORDER BY id LIMIT :limit")
        # A visitor's pending suggestion goes with its prediction.
        conn.execute(text(f"DELETE FROM labels WHERE model = :model AND prediction IN "
                          f"({doomed})"), args)
        predictions = conn.execute(text(f"DELETE FROM predictions WHERE id IN ({doomed})"),
                                   args).rowcount
        failures = conn.execute(text(
            "DELETE FROM request_failures WHERE id IN (SELECT id FROM request_failures "
            "WHERE model = :model AND at < :before ORDER BY id LIMIT :limit)"), args).rowcount
        return predictions, failures

    def record_label(self, model: str, prediction_id: int, label: int, *, by: Actor, at: str,
                     counted: bool, class_name: str) -> Label:
        args = {"model": model, "id": int(prediction_id)}
        with self.database.write() as conn:
            row = conn.execute(text("SELECT version, true_label FROM predictions WHERE model = "
                                    ":model AND id = :id"), args).first()
            if row is None:
                raise _no_prediction(model, prediction_id)
            version, previous = row
            pending = conn.execute(text(
                "SELECT id, label, by FROM labels WHERE model = :model AND prediction = :id "
                "AND counted = 0 AND id > COALESCE((SELECT MAX(id) FROM labels WHERE model = "
                ":model AND prediction = :id AND counted = 1), 0) ORDER BY id DESC LIMIT 1"),
                args).first()
            if not counted and pending is not None:
                # One pending suggestion per prediction: a visitor's flood adds no rows.
                conn.execute(text("DELETE FROM labels WHERE id = :id"), {"id": pending[0]})
            label_id = conn.execute(schema.labels.insert().values(
                model=model, prediction=int(prediction_id), label=int(label), by=by.name,
                role=by.role, at=at, counted=int(counted)).returning(schema.labels.c.id)
            ).scalar_one()
            if counted:
                conn.execute(text("UPDATE predictions SET true_label = :label WHERE model = "
                                  ":model AND id = :id"), args | {"label": int(label)})
                confirms = (None if pending is None or pending[1] != int(label)
                            else {"suggestion": pending[0], "by": pending[2]})
                append(conn, AuditEntry(
                    at=at, actor=by.name, role=by.role, action="label", outcome="done",
                    model=model, target=f"prediction {int(prediction_id)}", version=version,
                    details={"label": int(label), "class": class_name, "previous": previous,
                             "confirms": confirms}))
        return Label(label_id, int(prediction_id), int(label), by.name, by.role, at, counted)

    def labels(self, model: str, prediction_ids: Sequence[int]) -> list[Label]:
        if not prediction_ids:
            return []
        rows = self.database.read(
            "SELECT id, prediction, label, by, role, at, counted FROM labels WHERE model = "
            f":model AND prediction IN ({', '.join(str(int(i)) for i in prediction_ids)}) "
            "ORDER BY id", {"model": model})
        return [Label(int(i), int(prediction), int(label), by, role, at, bool(counted))
                for i, prediction, label, by, role, at, counted in rows]

    def version_of(self, model: str, prediction_id: int) -> int:
        rows = self.database.read("SELECT version FROM predictions WHERE model = :model AND "
                                  "id = :id", {"model": model, "id": int(prediction_id)})
        if not rows:
            raise _no_prediction(model, prediction_id)
        return int(rows[0][0])

    def none_of_these_scores(self, model: str, version: int) -> np.ndarray:
        rows = self.database.read(
            "SELECT ood_score FROM predictions WHERE model = :model AND version = :version "
            "AND true_label = :none", {"model": model, "version": version,
                                        "none": NONE_OF_THESE})
        return np.asarray([np.nan if s is None else s for (s,) in rows], np.float32)

    def labelled_images(self, model: str, sources: tuple[str, ...]
                        ) -> tuple[list[bytes], np.ndarray, list[str]]:
        if not sources:
            return [], np.zeros(0, np.int64), []
        matches = " OR ".join(f"source = :s{i} OR source LIKE :p{i}"
                              for i in range(len(sources)))
        args = {"model": model}
        for i, source in enumerate(sources):
            args |= {f"s{i}": source, f"p{i}": source + ":%"}
        rows = self.database.read(f"SELECT {_IMAGE_COLUMNS}, true_label, source FROM "
                                  f"predictions WHERE model = :model AND true_label >= 0 AND "
                                  f"({matches}) ORDER BY id", args)
        return (self._images(model, [r[:4] for r in rows]),
                np.asarray([r[4] for r in rows], np.int64), [r[5] for r in rows])


def _no_prediction(model: str, prediction_id: int) -> InvalidInput:
    return InvalidInput(f"there is no prediction {prediction_id} of model {model!r}. "
                        "To fix this, give the id of a logged prediction (the review queue "
                        "and the Predict page show them as #id).")


def _check_variant(variant: str | None) -> str | None:
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    return variant


def _rows_to_window(rows: Sequence[Any]) -> Window:
    if not rows:
        return Window.empty()
    columns = list(zip(*rows))
    return Window(
        ids=np.asarray(columns[0], np.int64),
        at=list(columns[1]),
        sources=list(columns[2]),
        predicted=np.asarray(columns[3], np.int64),
        confidence=np.asarray(columns[4], np.float32),
        probabilities=np.stack([np.frombuffer(b, np.float32) for b in columns[5]]),
        statistics={"brightness": np.asarray(columns[6], np.float32),
                    "contrast": np.asarray(columns[7], np.float32),
                    "sharpness": np.asarray(columns[8], np.float32)},
        embeddings=np.stack([np.frombuffer(b, np.float16) for b in columns[9]]).astype(np.float32),
        true_labels=np.asarray([-1 if t is None else t for t in columns[10]], np.int64),
        latency_ms=np.asarray(columns[11], np.float32),
        ood_scores=np.asarray([np.nan if s is None else s for s in columns[12]], np.float32),
    )


def _encoded(pixels: bytes | np.ndarray) -> bytes:
    """A record's image as kept: encoded here (the log writer's thread, not the request's)
    when the record carries its pixels."""
    return pixels if isinstance(pixels, bytes) else encode_logged(pixels)
