"""Checking the audit trail (`flask audit verify`): the sealed chain, rows waiting too long to
be sealed, and the signed checkpoints kept outside the database.

Read-only: it never writes, so it can run with a role that may only SELECT.

What a run proves, and what it cannot, is spelled out in docs/SECURITY.md ("Audit trail").
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from portal import clock
from portal.audit import seal
from portal.audit.keys import AuditKeys, current_keys
from portal.extensions import db

events = seal.events
_checkpoints = seal.AuditCheckpoint.__table__


@dataclass
class Checkpoint:
    body: dict
    source: str  # "FILE:LINE" or "database"

    @property
    def seq(self) -> int:
        return self.body["seq"]

    @property
    def at(self) -> str:
        return self.body.get("at", "?")


@dataclass
class Report:
    """What `verify` found. `ok` is False on any problem; `broken_id` names the first bad row."""

    checked_at: datetime
    limit: timedelta
    total: int = 0
    sealed: int = 0  # sealed rows verified (the chain #1..#sealed is intact)
    unsealed: int = 0
    stale_unsealed: int = 0  # unsealed longer than the limit
    oldest_unsealed: datetime | None = None
    keys_used: Counter = field(default_factory=Counter)
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str | None = None
    problems: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoint_sources: Counter = field(default_factory=Counter)
    newest_proven: Checkpoint | None = None
    late_sealed: int = 0
    first_late_id: int | None = None
    legacy: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def checked(self) -> int:
        """Rows accounted for: sealed and verified, or waiting within the limit to be sealed."""
        return self.sealed + self.unsealed - self.stale_unsealed

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def summary(self) -> str:
        """A few lines a person can paste into a ticket."""
        when = self.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        verdict = "OK" if self.ok else f"FAILED ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''})"
        keys = ", ".join(f"{key_id} {count:,}" for key_id, count in sorted(self.keys_used.items()))
        lines = [f"Audit trail check {when}: {verdict}"]
        sealed = f"{self.sealed:,} sealed and verified"
        if self.sealed:
            sealed += f" (seals #1-#{self.sealed:,}; keys: {keys})"
        waiting = f"{self.unsealed:,} not yet sealed"
        if self.oldest_unsealed is not None:
            age = int((self.checked_at - self.oldest_unsealed).total_seconds())
            waiting += f" (oldest {age:,} s; limit {int(self.limit.total_seconds()):,} s)"
        lines.append(f"Events: {self.total:,} in the table; {sealed}; {waiting}")
        if self.broken_id is not None:
            lines.append(f"Chain: BROKEN at event id {self.broken_id} (seal #{self.broken_seq}): {self.reason}")
        if self.checkpoints:
            sources = ", ".join(f"{source} {count}" for source, count in self.checkpoint_sources.items())
            proven = (f"newest proven {self.newest_proven.at} at seal #{self.newest_proven.seq:,}: every row up to it "
                      "is present and unchanged" if self.newest_proven else "none proven")
            lines.append(f"Checkpoints: {len(self.checkpoints)} read ({sources}); {proven}")
        else:
            lines.append("Checkpoints: none read (pass --checkpoints FILE): removing the newest rows would not show")
        if self.late_sealed:
            lines.append(f"Note: {self.late_sealed:,} row(s) were sealed more than the limit after they occurred "
                         f"(first: event id {self.first_late_id}): the sealer was down then, or rows were inserted "
                         "with an old time")
        lines.extend(f"Legacy: {line}" for line in self.legacy)
        lines.extend(f"Problem {number}: {problem}" for number, problem in enumerate(self.problems, 1))
        return "\n".join(lines)


# -- checkpoints from files --------------------------------------------------------------------


def read_checkpoint_file(path: str) -> tuple[list[Checkpoint], list[str]]:
    """Checkpoints from a file: the checkpoint file itself, or a log with one line per record
    (JSON log objects whose "message" is a checkpoint, or text lines ending in one). Lines that
    do not mention a checkpoint are skipped; lines that do but cannot be read are problems."""
    found, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line or seal.CHECKPOINT_TYPE not in line:
                continue
            body = _checkpoint_in(line)
            if body is None:
                problems.append(f"{path}:{number} mentions a checkpoint but is not one that can be read")
            else:
                found.append(Checkpoint(body, f"{path}:{number}"))
    return found, problems


def _checkpoint_in(line: str) -> dict | None:
    for candidate in (line, line[line.find("{"):] if "{" in line else ""):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        if value.get("type") == seal.CHECKPOINT_TYPE:
            return value
        if isinstance(value.get("message"), str):  # a JSON log line carrying one
            return _checkpoint_in(value["message"])
    return None


def _well_formed(body: dict) -> bool:
    return (isinstance(body.get("seq"), int) and body["seq"] >= 0 and isinstance(body.get("mac"), str)
            and body.get("count") == body["seq"] and isinstance(body.get("sig"), str)
            and isinstance(body.get("key_id"), str))


def _check_signature(keys: AuditKeys, checkpoint: Checkpoint) -> str | None:
    body = checkpoint.body
    if not _well_formed(body):
        return f"checkpoint {checkpoint.source} is malformed (seq, mac, count, key_id and sig are required)"
    key = keys.get(body["key_id"])
    if key is None:
        return (f"checkpoint {checkpoint.source} is signed with key {body['key_id']!r}, which AUDIT_KEYS does not "
                "list: it cannot be checked")
    if not hmac.compare_digest(seal.sign_checkpoint(key, body), body["sig"]):
        return f"checkpoint {checkpoint.source} ({checkpoint.at}) has a bad signature: it was edited or forged"
    return None


# -- the walk ----------------------------------------------------------------------------------


def verify(checkpoint_files=(), *, batch: int = 5000, now: datetime | None = None,
           database_checkpoints: bool = True) -> Report:
    """Walk the sealed chain in seal order recomputing each MAC with the key the row names; stop
    at the first bad row. Then: rows unsealed longer than `AUDIT_UNSEALED_MAX_SECONDS` are a
    failure; every checkpoint (from `checkpoint_files`, and the copies in the database) must be
    correctly signed and name a row that is still there with the same MAC."""
    keys = current_keys()
    report = Report(checked_at=now or clock.now(),
                    limit=timedelta(seconds=current_app.config["AUDIT_UNSEALED_MAX_SECONDS"]))
    checkpoints = _load_checkpoints(report, keys, checkpoint_files, database_checkpoints)
    wanted = {checkpoint.seq for checkpoint in checkpoints if checkpoint.seq > 0}
    macs_at: dict[int, tuple[int, str]] = {}
    _walk(report, keys, wanted, macs_at, batch)
    _unsealed(report)
    _prove(report, checkpoints, macs_at)
    _legacy(report, checkpoints)
    report.total = db.session.scalar(select(func.count()).select_from(events)) or 0
    db.session.rollback()
    return report


def _load_checkpoints(report: Report, keys: AuditKeys, files, from_database: bool) -> list[Checkpoint]:
    loaded = []
    for path in files:
        try:
            found, problems = read_checkpoint_file(path)
        except OSError as error:
            report.fail(f"checkpoint file {path} cannot be read: {error.strerror}")
            continue
        loaded.extend(found)
        for problem in problems:
            report.fail(problem)
        report.checkpoint_sources[path] += len(found)
    if from_database:
        for line in db.session.scalars(select(_checkpoints.c.line).order_by(_checkpoints.c.id)):
            body = _checkpoint_in(line)
            if body is not None:
                loaded.append(Checkpoint(body, "database"))
                report.checkpoint_sources["database copies"] += 1
    valid = []
    for checkpoint in loaded:
        problem = _check_signature(keys, checkpoint)
        if problem:
            report.fail(problem)
        else:
            valid.append(checkpoint)
    report.checkpoints = loaded
    return valid


def _walk(report: Report, keys: AuditKeys, wanted: set[int], macs_at: dict, batch: int) -> None:
    expected, previous = 1, seal.GENESIS_MAC
    while True:
        rows = db.session.execute(
            select(events).where(events.c.seal_seq >= expected).order_by(events.c.seal_seq).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            problem = _check_row(row, expected, previous, keys)
            if problem:
                report.broken_id, report.broken_seq, report.reason = row.id, expected, problem
                report.fail(f"event id {row.id} (seal #{expected}): {problem}")
                return
            if row.seal_seq in wanted:
                macs_at[row.seal_seq] = (row.id, row.seal_mac)
            report.sealed += 1
            report.keys_used[row.seal_key_id] += 1
            if row.row_hash is None and row.sealed_at - row.occurred_at > report.limit:
                report.late_sealed += 1
                report.first_late_id = report.first_late_id or row.id
            previous = row.seal_mac
            expected += 1
        db.session.rollback()  # each batch its own short read


def _check_row(row, expected: int, previous: str, keys: AuditKeys) -> str | None:
    if row.seal_seq != expected:
        return (f"the chain jumps from seal #{expected - 1} to #{row.seal_seq}: the sealed row(s) in between were "
                "removed")
    if row.seal_mac is None or row.seal_key_id is None or row.sealed_at is None:
        return "its seal is incomplete (MAC, key or seal time missing)"
    key = keys.get(row.seal_key_id)
    if key is None:
        return f"it is sealed with key {row.seal_key_id!r}, which AUDIT_KEYS does not list (list it to check the row)"
    mac = seal.row_mac(key, prev_mac=previous, seq=row.seal_seq, key_id=row.seal_key_id, sealed_at=row.sealed_at,
                       row=row)
    if not hmac.compare_digest(mac, row.seal_mac):
        return "its MAC does not match: the row was changed, or its seal recomputed without our key"
    return None


def _unsealed(report: Report) -> None:
    waiting = db.session.execute(
        select(func.count(), func.min(events.c.occurred_at)).where(events.c.seal_seq.is_(None))).one()
    report.unsealed, report.oldest_unsealed = waiting[0] or 0, waiting[1]
    cutoff = report.checked_at - report.limit
    stale = db.session.execute(
        select(func.count(), func.min(events.c.id)).where(events.c.seal_seq.is_(None), events.c.occurred_at < cutoff)
    ).one()
    report.stale_unsealed = stale[0] or 0
    if report.stale_unsealed:
        report.fail(f"{report.stale_unsealed:,} row(s) have waited longer than {int(report.limit.total_seconds())} s "
                    f"to be sealed, the first event id {stale[1]}: is a queue consumer running? (`flask audit seal` "
                    "seals them now; a row inserted with an old time shows up here too)")


def _prove(report: Report, checkpoints: list[Checkpoint], macs_at: dict) -> None:
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        seq = checkpoint.seq
        if seq == 0:
            continue
        if seq in macs_at:
            event_id, mac = macs_at[seq]
            if hmac.compare_digest(mac, checkpoint.body["mac"]):
                report.newest_proven = checkpoint
            else:
                report.fail(f"checkpoint {checkpoint.source} ({checkpoint.at}) has a different MAC for seal #{seq} "
                            f"than event id {event_id}: the rows up to it were rewritten and resealed")
        elif report.broken_id is not None and seq >= report.broken_seq:
            report.fail(f"checkpoint {checkpoint.source} ({checkpoint.at}) covers seal #{seq:,}, beyond the break at "
                        f"#{report.broken_seq}: not proven")
        else:
            report.fail(f"checkpoint {checkpoint.source} ({checkpoint.at}) covers seals #1-#{seq:,}, but the sealed "
                        f"chain ends at #{report.sealed:,}: the newest {seq - report.sealed:,} sealed row(s) were "
                        "removed")


def _legacy(report: Report, checkpoints: list[Checkpoint]) -> None:
    """The head of the unkeyed chain written before 0012, as the first checkpoint recorded it."""
    seen = set()
    for checkpoint in checkpoints:
        legacy = checkpoint.body.get("legacy")
        if not isinstance(legacy, dict) or legacy.get("head_id") in seen:
            continue
        seen.add(legacy.get("head_id"))
        row = db.session.execute(select(events.c.row_hash).where(events.c.id == legacy.get("head_id"))).first()
        before = db.session.scalar(select(func.count()).select_from(events).where(events.c.id <= legacy.get("head_id")))
        if row is None or row.row_hash != legacy.get("head") or before != legacy.get("rows"):
            report.fail(f"the old chain's head recorded at the upgrade (event id {legacy.get('head_id')}, "
                        f"{legacy.get('rows')} rows) is no longer in the table as it was")
        else:
            report.legacy.append(f"{legacy.get('rows'):,} rows from before the keyed seal; their old SHA-256 head "
                                 f"{legacy.get('head', '')[:16]}... (event id {legacy.get('head_id')}) is still there; "
                                 f"at the upgrade the old chain was {legacy.get('chain')}")
