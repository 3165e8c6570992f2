"""List and re-send the messages the DHT refused for good (the outbox's dead letters).

    python -m transformer.dht.dead_letters list   --outbox state/outbox.sqlite3
    python -m transformer.dht.dead_letters resend --outbox state/outbox.sqlite3 --id 17 --id 18
    python -m transformer.dht.dead_letters resend --outbox state/outbox.sqlite3 --all

Works on the outbox of a running service (SQLite in WAL mode takes a second
writer): re-sent messages go back to the end of their topic's queue and the
service's sender posts them within its poll interval. ``list`` prints one JSON
object per line (id, topic, kind, when, why; ``--values`` adds the value).
Exit codes: 0 done, 2 bad arguments or an unusable outbox file.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contract.cli_style import CliParser
from transformer.dht.outbox_schema import SCHEMA


@dataclass(frozen=True)
class DeadLetter:
    id: int
    topic_name: str
    topic_uuid: str
    kind: str
    created_at: float
    attempts: int
    failed_at: float
    reason: str
    value: Any


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"no outbox file at {path}")
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def list_dead_letters(path: Path) -> list[DeadLetter]:
    """Every dead letter of the outbox at ``path``, oldest first."""
    db = _connect(path)
    try:
        rows = db.execute(
            "SELECT id, topic_name, topic_uuid, kind, created_at, attempts, failed_at, reason, value"
            " FROM dead_letters ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    return [
        DeadLetter(
            id=row[0],
            topic_name=row[1],
            topic_uuid=row[2],
            kind=row[3],
            created_at=row[4],
            attempts=row[5],
            failed_at=row[6],
            reason=row[7],
            value=json.loads(row[8]),
        )
        for row in rows
    ]


def resend(path: Path, ids: Sequence[int] | None) -> list[int]:
    """Put dead letters (all when ``ids`` is None) back in the outbox; returns the ids moved."""
    db = _connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            chosen = [row[0] for row in db.execute("SELECT id FROM dead_letters ORDER BY id")]
            if ids is not None:
                chosen = [i for i in chosen if i in set(ids)]
            for dead_id in chosen:
                db.execute(
                    "INSERT INTO outbox (topic_name, topic_uuid, value, kind, created_at, attempts,"
                    " next_attempt_at) SELECT topic_name, topic_uuid, value, kind, ?, 0, 0"
                    " FROM dead_letters WHERE id = ?",
                    (time.time(), dead_id),
                )
                db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m transformer.dht.dead_letters", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="print the dead letters, one JSON object per line")
    outbox_help = "the outbox file (AUDIOGUARD_OUTBOX_PATH)"
    listing.add_argument("--outbox", type=Path, required=True, help=outbox_help)
    listing.add_argument("--values", action="store_true", help="include each message's value")
    again = sub.add_parser("resend", help="put dead letters back in the outbox")
    again.add_argument("--outbox", type=Path, required=True, help=outbox_help)
    chosen = again.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--id", type=int, action="append", dest="ids", help="a dead letter's id (repeatable)")
    chosen.add_argument("--all", action="store_true", help="every dead letter")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            for letter in list_dead_letters(args.outbox):
                record = asdict(letter)
                if not args.values:
                    record.pop("value")
                print(json.dumps(record))
            return 0
        moved = resend(args.outbox, None if args.all else args.ids)
        missing = sorted(set(args.ids or ()) - set(moved))
        print(f"re-sent {len(moved)} dead letter(s): {moved}")
        if missing:
            print(f"no dead letter with id {missing}", file=sys.stderr)
            return 2
        return 0
    except (OSError, sqlite3.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
