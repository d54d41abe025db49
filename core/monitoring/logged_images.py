"""The prediction log's images, kept beside its rows in the artifact store.

At 224x224 RGB a logged image is ~20-80 KB, against a row's ~3 KB: ten million of
them would make a terabyte database. Each append writes its batch's images as one
*pack* (the encoded images one after another) to the artifact store (a folder under
the registry, or the bucket's prefix on a team's setup); each row keeps its pack,
offset and length. One object per batch, not per image: the serving API's log
writer appends hundreds of rows per commit under load, and an object store charges
per request.

Layout, under the store's root or prefix::

    _logged-images/<model>/<YYYY-MM-DD>/<ms>-<random>.pack   a batch's images
    _logged-images/<model>/labelled/<ms>-<random>.pack       labelled ones kept by retention

``<ms>``: the latest time of the pack's rows, in milliseconds since the epoch; a pack's
folder is that time's day, so retention knows from a folder's name alone that every row
of its packs is older than the cutoff, and lists only the days it can finish.

Crash safety: a pack is written whole before its rows commit, so a row never points at
a missing pack; a writer killed between the two leaves a pack no row refers to, which
retention sweeps with the old ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.names import validate_model_name
from core.registry.artifacts import ArtifactStore

PREFIX = "_logged-images"  # starts with "_": never a model's folder
LABELLED = "labelled"
PACK_SUFFIX = ".pack"


@dataclass(frozen=True)
class ImageRef:
    """Where one logged image is: its pack (relative to the model's folder) and bytes."""

    pack: str
    offset: int
    length: int


@dataclass(frozen=True)
class Pack:
    name: str  # relative to the model's folder, as rows refer to it
    latest: datetime  # no row of the pack is dated after this
    labelled: bool  # written by retention: holds only images people labelled
    modified: float  # when the store wrote it (seconds since the epoch)
    size: int


class LoggedImages:
    """Writes, reads and removes packs of logged images in ``store``."""

    def __init__(self, store: ArtifactStore):
        self.store = store

    def _folder(self, model: str) -> str:
        return f"{PREFIX}/{validate_model_name(model)}"

    def write(self, model: str, images: Sequence[bytes], latest: datetime,
              labelled: bool = False) -> list[ImageRef]:
        """Stores ``images`` as one pack; returns where each one is, in order."""
        if not images:
            return []
        latest = latest.astimezone(UTC)
        folder = LABELLED if labelled else latest.strftime("%Y-%m-%d")
        name = f"{folder}/{round(latest.timestamp() * 1000)}-{uuid.uuid4().hex[:12]}{PACK_SUFFIX}"
        refs, offset = [], 0
        for image in images:
            refs.append(ImageRef(name, offset, len(image)))
            offset += len(image)
        self.store.put_object(f"{self._folder(model)}/{name}", b"".join(images))
        return refs

    def read(self, model: str, refs: Sequence[ImageRef]) -> list[bytes]:
        """The images at ``refs``, in order: one read per pack (the span its refs cover)."""
        by_pack: dict[str, list[ImageRef]] = {}
        for ref in refs:
            by_pack.setdefault(ref.pack, []).append(ref)
        found: dict[ImageRef, bytes] = {}
        for pack, in_pack in by_pack.items():
            start = min(ref.offset for ref in in_pack)
            end = max(ref.offset + ref.length for ref in in_pack)
            span = self.store.read_object(f"{self._folder(model)}/{pack}", start, end - start)
            for ref in in_pack:
                found[ref] = span[ref.offset - start:ref.offset - start + ref.length]
        return [found[ref] for ref in refs]

    def folders(self, model: str) -> list[str]:
        """The folders of ``model``'s packs: its days and ``LABELLED``."""
        return self.store.list_folders(self._folder(model) + "/")

    def packs(self, model: str, folder: str | None = None) -> list[Pack]:
        """The packs of ``model`` (in one of its ``folders``, or all), oldest first."""
        base = self._folder(model) + "/"
        listed = self.store.list_objects(base + (f"{folder}/" if folder else ""))
        packs = [pack for item in listed
                 if (pack := _parse(item.key[len(base):], item.modified, item.size))]
        return sorted(packs, key=lambda pack: pack.latest)

    def delete(self, model: str, pack: str) -> None:
        self.store.delete_object(f"{self._folder(model)}/{pack}")


def day_ended_by(folder: str, cutoff: datetime) -> bool:
    """Whether ``folder`` is a day whose end is at or before ``cutoff``: every row of
    every pack in it is older than ``cutoff`` (a pack's folder is its newest row's day)."""
    try:
        day = datetime.strptime(folder, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return False
    return day + timedelta(days=1) <= cutoff


def _parse(name: str, modified: float, size: int) -> Pack | None:
    """The pack a stored name stands for (None: not a pack this module wrote)."""
    folder, _, file_name = name.partition("/")
    milliseconds = file_name.removesuffix(PACK_SUFFIX).split("-", 1)[0]
    if not file_name.endswith(PACK_SUFFIX) or not milliseconds.isdigit():
        return None
    latest = datetime.fromtimestamp(int(milliseconds) / 1000, UTC)
    return Pack(name, latest, folder == LABELLED, modified, size)
