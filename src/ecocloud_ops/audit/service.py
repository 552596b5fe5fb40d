"""The audit log: every login and every change, hash-chained and signed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crypto import AuditSigner, load_public_key
from ..db import utcnow
from .models import AuditEntry, AuditHead

GENESIS = "0" * 64
EXPORT_FORMAT = "ecocloud-audit-export/1"
SECRET_MARKERS = ("password", "secret", "token", "community", "key", "passphrase", "credential")
MASK = "***"


@dataclass(frozen=True)
class Actor:
    """Who does something, through which door, from where."""

    username: str
    role: str = ""
    channel: str = "system"  # console, api, cli, worker, system
    ip: str = ""
    user_id: int | None = None


SYSTEM = Actor("system", channel="system")


def mask_secrets(value: Any) -> Any:
    """Replace values of secret-looking keys by ``***`` (recursively)."""
    if isinstance(value, dict):
        return {
            k: (MASK if any(m in str(k).lower() for m in SECRET_MARKERS) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def entry_fields(e: AuditEntry | dict[str, Any]) -> dict[str, Any]:
    get = (lambda k: e[k]) if isinstance(e, dict) else (lambda k: getattr(e, k))
    at = get("at")
    return {
        "seq": int(get("seq")),
        "at": at.isoformat() if isinstance(at, dt.datetime) else at,
        "actor": get("actor"), "actor_role": get("actor_role"), "channel": get("channel"), "ip": get("ip"),
        "action": get("action"), "target_type": get("target_type"), "target_id": get("target_id"),
        "outcome": get("outcome"), "before": get("before"), "after": get("after"), "detail": get("detail"),
    }


def compute_hash(fields: dict[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(_canonical(fields) + prev_hash.encode()).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def verify_entries(entries: Iterable[dict[str, Any]], public_key: Ed25519PublicKey,
                   start_prev_hash: str | None = None, start_seq: int | None = None) -> VerifyResult:
    """Check the chain: contiguous sequence, each hash, each link, each signature.

    Works on dicts (an export file) so it can run offline with nothing but the public key."""
    checked = 0
    prev_hash = start_prev_hash
    expected_seq = start_seq
    last = 0
    for e in entries:
        seq = int(e["seq"])
        if expected_seq is not None and seq != expected_seq:
            missing = expected_seq if seq > expected_seq else seq
            return VerifyResult(False, checked, last, missing, f"entry {missing} is missing (next found: {seq})")
        if prev_hash is not None and e["prev_hash"] != prev_hash:
            return VerifyResult(False, checked, last, seq, f"entry {seq} does not link to entry {seq - 1}")
        if compute_hash(entry_fields(e), e["prev_hash"]) != e["hash"]:
            return VerifyResult(False, checked, last, seq, f"entry {seq} content does not match its hash")
        try:
            public_key.verify(bytes.fromhex(e["signature"]), bytes.fromhex(e["hash"]))
        except (InvalidSignature, ValueError):
            return VerifyResult(False, checked, last, seq, f"entry {seq} signature is invalid")
        prev_hash = e["hash"]
        expected_seq = seq + 1
        last = seq
        checked += 1
    return VerifyResult(True, checked, last)


def entry_to_dict(e: AuditEntry) -> dict[str, Any]:
    d = entry_fields(e)
    d.update(prev_hash=e.prev_hash, hash=e.hash, signature=e.signature)
    return d


@dataclass
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    outcome: str | None = None


def ensure_head(session: Session) -> None:
    """Create the chain head row (``db upgrade`` does this once, before any writer races for it)."""
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        session.flush()


class AuditLog:
    """Appends entries in the caller's transaction, so a change and its audit entry commit together."""

    def __init__(self, session: Session, signer: AuditSigner) -> None:
        self.session = session
        self.signer = signer

    def record(self, actor: Actor, action: str, *, target_type: str = "", target_id: Any = "",
               before: dict | None = None, after: dict | None = None, outcome: str = "success",
               detail: str = "") -> AuditEntry:
        """Append one entry; returns it. Secrets in ``before``/``after`` are masked first."""
        head = self.session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            self.session.add(head)
            self.session.flush()
        now = utcnow()
        entry = AuditEntry(
            seq=head.seq + 1, at=now.replace(microsecond=now.microsecond // 1000 * 1000),
            actor=actor.username[:64], actor_role=actor.role, channel=actor.channel, ip=actor.ip[:64],
            action=action, target_type=target_type, target_id=str(target_id)[:64], outcome=outcome,
            before=mask_secrets(before) if before is not None else None,
            after=mask_secrets(after) if after is not None else None,
            detail=detail[:2000], prev_hash=head.hash,
        )
        # Round-trip through JSON so what we hash is exactly what the database gives back.
        entry.before = json.loads(json.dumps(entry.before, default=str)) if entry.before is not None else None
        entry.after = json.loads(json.dumps(entry.after, default=str)) if entry.after is not None else None
        entry.hash = compute_hash(entry_fields(entry), entry.prev_hash)
        entry.signature = self.signer.sign(entry.hash)
        head.seq = entry.seq
        head.hash = entry.hash
        self.session.add(entry)
        self.session.flush()
        return entry

    # Reading -------------------------------------------------------------------------------
    def _filtered(self, f: AuditFilter) -> Any:
        q = select(AuditEntry)
        if f.actor:
            q = q.where(AuditEntry.actor == f.actor)
        if f.action:
            q = q.where(AuditEntry.action.startswith(f.action))
        if f.target_type:
            q = q.where(AuditEntry.target_type == f.target_type)
        if f.outcome:
            q = q.where(AuditEntry.outcome == f.outcome)
        if f.since:
            q = q.where(AuditEntry.at >= f.since)
        if f.until:
            q = q.where(AuditEntry.at < f.until)
        return q

    def search(self, f: AuditFilter, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """Newest first."""
        q = self._filtered(f).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
        return list(self.session.execute(q).scalars())

    def iter_chain(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Iterator[AuditEntry]:
        q = self._filtered(AuditFilter(since=since, until=until)).order_by(AuditEntry.seq)
        yield from self.session.execute(q.execution_options(yield_per=500)).scalars()

    def verify(self) -> VerifyResult:
        """Check the whole chain in the database against this instance's public key."""
        head = self.session.get(AuditHead, 1)
        result = verify_entries((entry_to_dict(e) for e in self.iter_chain()), self.signer.public_key,
                                start_prev_hash=GENESIS, start_seq=1)
        if result.ok and head is not None and (head.seq != result.head_seq):
            return VerifyResult(False, result.checked, result.head_seq, result.head_seq + 1,
                                f"chain ends at {result.head_seq} but the head says {head.seq}: entries deleted")
        return result

    def export_lines(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Iterator[str]:
        """JSON lines: a header with the public key, the entries of the range, the signed head."""
        entries = [entry_to_dict(e) for e in self.iter_chain(since, until)]
        head = self.session.get(AuditHead, 1)
        header = {
            "format": EXPORT_FORMAT, "exported_at": utcnow().isoformat(),
            "public_key": self.signer.public_pem(),
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
            "count": len(entries),
            "chain_head": {"seq": head.seq if head else 0, "hash": head.hash if head else GENESIS,
                           "signature": self.signer.sign(head.hash) if head else ""},
        }
        yield json.dumps(header, ensure_ascii=False)
        for e in entries:
            yield json.dumps(e, ensure_ascii=False)


def verify_export(lines: Iterable[str]) -> VerifyResult:
    """Verify an export file offline: only the public key inside it is needed."""
    it = iter(lines)
    try:
        header = json.loads(next(it))
    except (StopIteration, json.JSONDecodeError):
        return VerifyResult(False, 0, 0, None, "not an audit export: no header line")
    if header.get("format") != EXPORT_FORMAT:
        return VerifyResult(False, 0, 0, None, "not an audit export: unknown format")
    key = load_public_key(header["public_key"])
    entries = [json.loads(line) for line in it if line.strip()]
    if len(entries) != header.get("count"):
        return VerifyResult(False, 0, 0, None, f"header says {header.get('count')} entries, file has {len(entries)}")
    head = header["chain_head"]
    try:
        key.verify(bytes.fromhex(head["signature"]), bytes.fromhex(head["hash"]))
    except (InvalidSignature, ValueError):
        return VerifyResult(False, 0, 0, None, "the chain head's signature is invalid")
    start_prev = GENESIS if entries and entries[0]["seq"] == 1 else None
    result = verify_entries(entries, key, start_prev_hash=start_prev,
                            start_seq=entries[0]["seq"] if entries else None)
    if result.ok and entries and entries[-1]["seq"] == head["seq"] and entries[-1]["hash"] != head["hash"]:
        return VerifyResult(False, result.checked, result.head_seq, head["seq"], "last entry differs from chain head")
    return result
