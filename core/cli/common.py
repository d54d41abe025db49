"""What every command shares: its options (``--actor``, ``--json``, ``--out``), the acting
user and the time, and how documents, images and passwords go in and out."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.app import Backends, check_upload_size, parse_version
from core.app.vocabulary import ANONYMOUS
from core.config import Config
from core.errors import InvalidInput

Handler = Callable[[argparse.Namespace, Backends], int]

# Every command that acts does so as someone; core checks that person's role.
_ACTING = argparse.ArgumentParser(add_help=False)
_ACTING.add_argument("--actor", metavar="NAME", help="the user acting (default: "
                     f"'{ANONYMOUS}', whose role is $ANONYMOUS_ROLE, by default viewer)")
_JSON = argparse.ArgumentParser(add_help=False)
_JSON.add_argument("--json", action="store_true", help="print JSON instead of text")


class Commands:
    """A level of commands: each added with its handler and the shared options it takes."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def add(self, name: str, handler: Handler, *, help: str, acting: bool = True,
            json: bool = False) -> argparse.ArgumentParser:
        parents = ([_ACTING] if acting else []) + ([_JSON] if json else [])
        parser = self._subparsers.add_parser(name, parents=parents, help=help)
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, *, help: str) -> Commands:
        """A command whose actions are sub-commands (``users add``, ``alerts list``...)."""
        parser = self._subparsers.add_parser(name, help=help)
        return Commands(parser.add_subparsers(dest=f"{name}_command", required=True,
                                              metavar="ACTION"))


def add_document_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write to FILE instead of printing")


def now() -> datetime:
    return datetime.now(UTC)


def actor(args: argparse.Namespace) -> str:
    return args.actor or ANONYMOUS


def setup_actor(args: argparse.Namespace) -> str:
    """Setting up (the first model, the first admin) is done by whoever runs it here."""
    return args.actor or getpass.getuser()


def version_arg(value: str | None) -> int | None:
    return None if value is None else parse_version(value)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def require_folder(folder: Path, option: str) -> None:
    if not folder.is_dir():
        raise InvalidInput(f"folder {folder} does not exist. To fix this, create it or "
                           f"choose another {option}.")


def write_atomically(path: Path, data: bytes) -> None:
    """Writes beside the target, then renames: a failure never leaves a half-written file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def print_or_write(text: str, out: Path | None, what: str) -> None:
    """Prints a document, or writes it to ``out`` (whole or not at all)."""
    if out is None:
        print(text)
        return
    require_folder(out.parent, "--out path")
    write_atomically(out, text.encode())
    print(f"wrote {what} to {out}")


def read_upload(path: Path, config: Config) -> bytes:
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file. To fix this, give the path of an image file.")
    # Refuse before reading a huge file into memory.
    check_upload_size(path.stat().st_size, config.max_upload_bytes)
    return path.read_bytes()


def read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInput("the two passwords differ. To fix this, type the same twice.")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
