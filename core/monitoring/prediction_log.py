"""The prediction log: every prediction served, with what monitoring needs.

The seam; ``core.monitoring.sql_prediction_log`` keeps it in the registry's database.
Each ``append`` is one transaction, so rows are never torn; concurrent writers wait for
the lock (busy timeout) instead of failing or losing rows. The serving API appends
through ``GroupCommitWriter`` (``core.monitoring.group_commit``): many requests'
rows in one transaction. Requests that got no prediction are kept too, as
``FailedRequest`` rows without any image, so the error rate can be watched.
Images are kept beside the rows (``core.monitoring.logged_images``): a row refers to
its image's pack; rows logged before that keep theirs in ``pixels``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from core.audit import Actor
from core.monitoring.log_records import (
    FailedRequest,
    Label,
    PredictionRecord,
    RequestRow,
    Window,
)
from core.monitoring.logged_images import ImageRef

# A pack younger than this is never swept: a writer may be between writing it and
# committing its rows (rows dated in the past, e.g. a simulation's, are written now too).
SWEEP_GRACE_SECONDS = 3600
# The most kept images moved into one labelled pack.
LABELLED_PACK_IMAGES = 1000


@dataclass(frozen=True)
class ImageSweep:
    packs_removed: int
    bytes_removed: int
    images_kept: int  # moved into labelled packs


class PredictionLog(ABC):
    """Where predictions are recorded; replaceable by another database."""

    @abstractmethod
    def append(self, records: list[PredictionRecord],
               failures: Sequence[FailedRequest] = ()) -> list[int]:
        """Stores records and failed requests atomically (all or none); returns the
        records' ids."""

    @abstractmethod
    def append_once(self, records: list[PredictionRecord]) -> list[str]:
        """Stores the device records (source ``device``, one client) whose id that client
        has not logged yet, atomically; returns the ids stored now. A retried batch stores
        nothing again."""

    @abstractmethod
    def window(self, model: str, version: int, *, last: int | None = None,
               since: str | None = None, until: str | None = None,
               sources: Sequence[str] | None = None, max_id: int | None = None) -> Window:
        """The version's predictions: the ``last`` N, and/or those in [since, until),
        of the given source kinds (``SOURCE_KINDS``; None: all), with ids up to
        ``max_id`` (None: all)."""

    @abstractmethod
    def last_id(self) -> int:
        """The newest prediction's id, of any model (0: none). Ids grow in commit order
        and are shared by every model: an upper bound for any model's cursor, read from
        the primary key alone."""

    @abstractmethod
    def first_at(self, model: str, since: str | None) -> str | None:
        """The time of the earliest prediction or failed request at or after ``since``."""

    @abstractmethod
    def versions_between(self, model: str, since: str, until: str,
                         versions: Sequence[int]) -> list[int]:
        """Which of ``versions`` have predictions or failed requests in [since, until),
        plus 0 if requests failed there before a version was chosen."""

    @abstractmethod
    def arrived(self, model: str, after_id: int, up_to_id: int, before: str
                ) -> list[tuple[int, str]]:
        """(version, at) of predictions with ids in (after_id, up_to_id] dated before
        ``before``: rows that arrived after their period was summarized."""

    @abstractmethod
    def count(self, model: str, version: int | None = None) -> int:
        """How many predictions are logged (for one version, or all)."""

    @abstractmethod
    def sources(self, model: str, version: int) -> list[str]:
        """The distinct sources of a version's logged predictions, sorted."""

    @abstractmethod
    def api_requests(self, model: str, since: str, until: str | None = None,
                     version: int | None = None) -> list[RequestRow]:
        """API requests in [since, until), answered and failed, oldest first: one row per
        request and variant (a shadowed request gives a champion and a shadow row); of
        one version only if given (0: failed before a version was chosen)."""

    @abstractmethod
    def shadow_pairs(self, model: str, champion: int, candidate: int) -> np.ndarray:
        """Instances the candidate shadowed while ``champion`` answered, oldest first: int64
        [n, 5] of champion row id, candidate row id, champion's class, candidate's class,
        true class (-1: unknown; feedback on either row). Rows pair on the server's request
        id and the instance's place in the request: the same image, never another one."""

    @abstractmethod
    def variant_outcomes(self, model: str, version: int, variant: str) -> np.ndarray:
        """int64 [n, 2] of predicted and true class (-1: unknown) of one version's rows
        of one variant (e.g. a canary's answers)."""

    @abstractmethod
    def images(self, model: str, ids: Sequence[int]) -> list[tuple[bytes, int]]:
        """The encoded image and true class (-1: unknown) of the given predictions, in that order."""

    @abstractmethod
    def pack_rows(self, model: str, packs: Sequence[str]
                  ) -> dict[str, list[tuple[int, ImageRef]]]:
        """The predictions (id, where its image is) whose image is in each of ``packs``
        (a pack no row refers to is missing from the answer)."""

    @abstractmethod
    def move_images(self, model: str, moved: dict[int, ImageRef]) -> None:
        """Points predictions (by id) at their images' new places, in one transaction."""

    @abstractmethod
    def sweep_images(self, model: str, before: str,
                     grace_seconds: float = SWEEP_GRACE_SECONDS) -> ImageSweep:
        """After ``delete_before``: in each day of packs that ended by ``before`` (every
        row in it is older), removes the packs no row refers to any more, and moves the
        images rows still refer to (labelled ones, kept) into labelled packs first; and
        removes labelled packs no row refers to. A day is looked at again only while it
        still holds packs; packs written in the last ``grace_seconds`` (by the clock)
        are left alone: their rows may still be committing."""

    @abstractmethod
    def delete_before(self, conn: Connection, model: str, before: str, limit: int
                      ) -> tuple[int, int]:
        """Deletes up to ``limit`` of ``model``'s oldest predictions dated before
        ``before``, and its failed requests dated before then, inside the caller's
        transaction; returns (predictions, failed requests) deleted. Predictions a person
        labelled (any source but a simulation) are kept: they are training data."""

    @abstractmethod
    def record_label(self, model: str, prediction_id: int, label: int, *, by: Actor, at: str,
                     counted: bool, class_name: str) -> Label:
        """Keeps a label with who gave it and when, in one transaction: a counted one also
        sets the prediction's true class and writes an audit entry (what it was before,
        and the visitor's suggestion it confirms, if any); an uncounted one (a visitor's)
        replaces that visitor kind's earlier pending suggestion for the prediction."""

    @abstractmethod
    def labels(self, model: str, prediction_ids: Sequence[int]) -> list[Label]:
        """Every label given to these predictions, oldest first."""

    @abstractmethod
    def version_of(self, model: str, prediction_id: int) -> int:
        """The version that made a logged prediction (InvalidInput if there is none)."""

    @abstractmethod
    def labelled_images(self, model: str, sources: tuple[str, ...]
                        ) -> tuple[list[bytes], np.ndarray, list[str]]:
        """Encoded images, true labels and sources of predictions labelled with a class
        (not ``NONE_OF_THESE``) whose source starts with one of ``sources`` (e.g.
        ``("simulation:brightness", "upload")``)."""

    @abstractmethod
    def none_of_these_scores(self, model: str, version: int) -> np.ndarray:
        """float32 [n]: the OOD scores (NaN: not scored) of a version's predictions
        people labelled ``NONE_OF_THESE``."""
