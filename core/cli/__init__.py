"""Command line: ``python -m core [--registry DIR] [--model-name NAME] COMMAND``.

One module per command group declares its commands (parser and handler side by side);
this module assembles them. Every error a user can cause is printed as one line on stderr
with exit status 1; JSON goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.app import build_backends
from core.cli import (
    alerts,
    audit,
    decisions,
    jobs,
    keys,
    operations,
    register,
    review,
    traffic,
    users,
)
from core.cli import versions as versions_commands
from core.cli.common import Commands
from core.config import Config, load_config
from core.errors import CoreError

# In the order `python -m core --help` lists them.
GROUPS = (versions_commands, register, jobs, decisions, users, keys, traffic, operations, alerts,
          review, audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core",
                                     description="Operate an image-classification model.")
    parser.add_argument("--registry", type=Path, help="registry folder "
                        "(default: $MODEL_REGISTRY_DIR or ./model_registry)")
    parser.add_argument("--model-name", help="model name inside the registry "
                        "(default: $MODEL_NAME or 'classifier')")
    commands = Commands(parser.add_subparsers(dest="command", required=True,
                                              metavar="COMMAND"))
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None, config: Config | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = (config or load_config()).with_overrides(registry_dir=args.registry,
                                                          model_name=args.model_name)
        backends = build_backends(config)
        try:
            return args.handler(args, backends)
        finally:
            backends.close()
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was registered.", file=sys.stderr)
        return 130
