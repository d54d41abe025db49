"""The hash-chained audit log: audit verify, head, seal, export, evidence."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from core.app import (
    Backends,
    audit_head,
    check_audit_log,
    decision_evidence,
    export_audit_log,
    seal_audit_log,
)
from core.app.vocabulary import CARD_FORMATS
from core.cli.common import Commands, actor, add_document_output, now, print_or_write
from core.errors import InvalidInput


def register(commands: Commands) -> None:
    audit = commands.group("audit", help="verify or export the hash-chained audit log")
    check = audit.add("verify", cmd_verify, json=True,
                      help="check the chain; exit 1 naming the first bad entry")
    check.add_argument("--anchor", metavar="SEQ:HASH|FILE",
                       help="a head recorded earlier: entry SEQ must still have HASH (or the "
                       "file 'audit head --json' wrote)")
    audit.add("head", cmd_head, json=True, help=(
        "the newest entry and its hash: keep it outside the database, check the log against "
        "it later (--anchor)"))
    seal = audit.add("seal", cmd_seal, help="add a keyed entry once AUDIT_KEY is set (admins)")
    seal.add_argument("--reason", required=True)
    dump = audit.add("export", cmd_export, help="print every entry")
    dump.add_argument("--format", choices=("csv", "json"), default="json")
    evidence = audit.add("evidence", cmd_evidence, help=(
        "what the reviewer saw for a decision, with the entry checked against the chain"))
    evidence.add_argument("seq", type=int, metavar="SEQ",
                          help="the decision's audit entry (promote, reject, rollback)")
    evidence.add_argument("--format", choices=CARD_FORMATS, default="html",
                          help="html (default: one self-contained file) or md")
    add_document_output(evidence)


def cmd_evidence(args: Namespace, backends: Backends) -> int:
    document = decision_evidence(backends, args.seq, actor=actor(args), now=now())
    print_or_write(document.render(args.format), args.out,
                   f"the evidence of audit entry {args.seq}")
    return 0


def cmd_export(args: Namespace, backends: Backends) -> int:
    print(export_audit_log(backends, args.format, actor=actor(args), now=now()), end="")
    return 0


def cmd_head(args: Namespace, backends: Backends) -> int:
    head = audit_head(backends, actor=actor(args), now=now())
    print(json.dumps(head, indent=2) if args.json else f"{head['seq']}:{head['hash']}")
    return 0


def cmd_seal(args: Namespace, backends: Backends) -> int:
    entry = seal_audit_log(backends, actor=actor(args), reason=args.reason, now=now())
    print(f"sealed: entry {entry.seq} is keyed ({entry.hash})")
    return 0


def cmd_verify(args: Namespace, backends: Backends) -> int:
    result = check_audit_log(backends, actor=actor(args), now=now(),
                             anchor=_anchor(args.anchor))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        print(f"audit log verified: {result.entries} entries, head {result.entries}:"
              f"{result.head_hash}")
    else:
        print(f"audit log FAILED verification: {result.problem}")
    return 0 if result.ok else 1


def _anchor(value: str | None) -> tuple[int, str] | None:
    """``SEQ:HASH``, or a file holding what ``audit head --json`` printed."""
    if value is None:
        return None
    if ":" not in value and Path(value).is_file():
        try:
            head = json.loads(Path(value).read_text())
            value = f"{int(head['seq'])}:{head['hash']}"
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"--anchor {value} is not a file 'audit head --json' wrote. To "
                               "fix this, give that file or SEQ:HASH.") from None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise InvalidInput(f"--anchor {value!r} is not SEQ:HASH. To fix this, copy the head "
                           "that 'python -m core audit verify' printed, e.g. 12:3f5a....")
    return int(seq), digest
