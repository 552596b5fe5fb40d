"""Ticket attachments: size and type limits, files stored outside the web root, served only to those
allowed to see the ticket.

A file is stored under ``<files_dir>/attachments/<ticket id>/<random name>`` (never under the name
the uploader chose), written atomically with mode 0640, and its SHA-256 is checked again before it is
served. The type must be allowed by the extension *and* by the content's magic bytes; executables,
HTML and SVG are refused whatever they are called.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import secrets
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..audit.service import Actor, AuditLog
from ..db import Base, UTCDateTime, utcnow
from ..errors import EcoCloudError, NotFound, ValidationFailed
from .models import Ticket, TicketEvent

log = logging.getLogger(__name__)

# Limits. Settings have no fields for them yet: hard-coded here (the lead may move them to Settings).
#: Largest attachment accepted (the web app's MAX_CONTENT_LENGTH, 16 MiB, caps the whole request).
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
#: Attachments per ticket.
MAX_ATTACHMENTS_PER_TICKET = 50
#: Displayed file names are cut to this many characters (the extension kept).
MAX_FILENAME = 120

#: Allowed extension -> the content type the file is served with (never the uploader's claim).
ALLOWED_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "txt": "text/plain",
    "log": "text/plain",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "zip": "application/zip",
}
#: Magic bytes of programs, refused whatever their name (binary: NUL bytes in the first 512 bytes, so a
#: text file that happens to start with "MZ" is not mistaken for one).
FORBIDDEN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Java class or Mach-O binary"),
)
#: Markup that a browser would render or run, refused in text files.
MARKUP = re.compile(rb"^\s*<(?:!doctype\s+html|html|head|body|script|svg|\?xml|iframe|object|embed|meta)\b",
                    re.IGNORECASE)
#: Control characters other than tab, line breaks and form feed: binary data, not text.
CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
#: Characters that have no place in a displayed file name (Windows-reserved, quotes).
UNSAFE_NAME_CHARS = re.compile(r'[<>:"/\\|?*]')


class AttachmentTooLarge(ValidationFailed):
    status = 413
    code = "attachment_too_large"


class AttachmentCorrupt(EcoCloudError):
    """The stored file is missing or no longer matches its checksum: it is not served."""

    status = 500
    code = "attachment_corrupt"


class Attachment(Base):
    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    #: The uploader's file name, sanitized for display and downloads (no path parts, no control characters).
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Random name of the file on disk, under ``attachments/<ticket id>/``.
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def sanitize_filename(name: str) -> str:
    """The last path part of ``name``, NFC-normalized, without control or format characters (which
    include right-to-left overrides; tabs and line breaks become spaces), with reserved characters
    replaced and no leading dots; at most 120 characters with the extension kept. Empty results
    become ``attachment``."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(" " if c.isspace() else c for c in name
                   if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = UNSAFE_NAME_CHARS.sub("_", name)
    name = " ".join(name.split()).lstrip(". ").rstrip(". ")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[:MAX_FILENAME - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name or "attachment"


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def _text_ok(data: bytes) -> str | None:
    """None if ``data`` is plain text (UTF-8, UTF-16 with a BOM or GB18030), else why not."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return "it is not valid UTF-16 text"
        data = text.encode("utf-8")
    elif b"\x00" in data:
        return "it contains NUL bytes (binary data, not text)"
    else:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            return "it is neither UTF-8 nor GB18030 text"
    if CONTROL_CHARS.search(text):
        return "it contains control characters (binary data, not text)"
    if MARKUP.match(data.lstrip(b"\xef\xbb\xbf")):
        return "it is HTML, SVG or XML markup"
    return None


def _office_ok(data: bytes, ext: str) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return f"it is not a valid {ext} file (broken archive)"
    if ext == "zip":
        return None
    main = {"xlsx": "xl/workbook.xml", "docx": "word/document.xml"}[ext]
    if "[Content_Types].xml" not in names or main not in names:
        return f"it is not an Office {ext} document"
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        return "it contains macros"
    return None


def sniff(ext: str, data: bytes) -> str | None:
    """None if ``data`` really is a file of type ``ext``, else the reason it is refused."""
    head = data[:16]
    binary = b"\x00" in data[:512]
    for magic, what in FORBIDDEN_MAGIC:
        if head.startswith(magic) and binary:
            return f"the content is {what}"
    if head.startswith(b"#!"):
        return "the content is a script (it starts with #!)"
    if ext == "pdf":
        return None if data[:1024].lstrip(b"\r\n\t ").startswith(b"%PDF-") else "the content is not a PDF"
    if ext == "png":
        return None if head.startswith(b"\x89PNG\r\n\x1a\n") else "the content is not a PNG image"
    if ext in ("jpg", "jpeg"):
        return None if head.startswith(b"\xff\xd8\xff") else "the content is not a JPEG image"
    if ext == "gif":
        return None if head.startswith((b"GIF87a", b"GIF89a")) else "the content is not a GIF image"
    if ext in ("txt", "log", "csv"):
        return _text_ok(data)
    if ext in ("zip", "xlsx", "docx"):
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return f"the content is not a {ext} file (no ZIP header)"
        return _office_ok(data, ext)
    return "this type is not allowed"


def validate(filename: str, data: bytes) -> tuple[str, str]:
    """Check an upload; returns its display name and the content type it will be served with."""
    name = sanitize_filename(filename)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(
            f"file: larger than the limit of {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB",
            details=[{"field": "file", "message": f"at most {MAX_ATTACHMENT_BYTES} bytes"}])
    if not data:
        raise _fail("file", "the file is empty")
    ext = extension(name)
    if ext not in ALLOWED_TYPES:
        raise _fail("file", f"type .{ext or '(none)'} is not allowed; allowed: "
                            + ", ".join(sorted(set(ALLOWED_TYPES) - {"jpeg"})))
    reason = sniff(ext, data)
    if reason is not None:
        raise _fail("file", f"refused as .{ext}: {reason}")
    return name, ALLOWED_TYPES[ext]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path`` (mode 0640)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.fchmod(fd, 0o640)  # the umask may have taken bits away; it cannot add any
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_PENDING = "ecocloud_attachment_files"


def _track(session: Session, path: Path) -> None:
    """Remove ``path`` again if the session rolls back: no file without its row."""
    if _PENDING not in session.info:
        session.info[_PENDING] = []

        @event.listens_for(session, "after_commit")
        def _committed(s: Session) -> None:
            s.info.get(_PENDING, []).clear()

        @event.listens_for(session, "after_rollback")
        def _rolled_back(s: Session) -> None:
            for p in s.info.get(_PENDING, []):
                Path(p).unlink(missing_ok=True)
            s.info.get(_PENDING, []).clear()

    session.info[_PENDING].append(str(path))


class AttachmentService:
    def __init__(self, session: Session, audit: AuditLog, files_dir: Path) -> None:
        self.session = session
        self.audit = audit
        self.root = files_dir / "attachments"

    def path(self, att: Attachment) -> Path:
        return self.root / str(att.ticket_id) / att.stored_name

    def add(self, actor: Actor, ticket: Ticket, filename: str, data: bytes,
            now: dt.datetime | None = None) -> Attachment:
        """Store an upload for a ticket the caller may see (the caller checks that). Nothing is written
        unless the upload passes every check; the file is removed again if the transaction rolls back."""
        name, content_type = validate(filename, data)
        count = len(self.list(ticket))
        if count >= MAX_ATTACHMENTS_PER_TICKET:
            raise _fail("file", f"a ticket holds at most {MAX_ATTACHMENTS_PER_TICKET} attachments")
        now = now or utcnow()
        digest = hashlib.sha256(data).hexdigest()
        att = Attachment(ticket_id=ticket.id, filename=name, content_type=content_type, size=len(data),
                         sha256=digest, stored_name=secrets.token_hex(16), uploaded_by=actor.username,
                         uploaded_at=now)
        self.session.add(att)
        self.session.add(TicketEvent(ticket_id=ticket.id, at=now, actor=actor.username, kind="attachment",
                                     field="attachment", new_value=name, body=f"附件：{name}"))
        ticket.updated_at = now
        self.session.flush()
        self.audit.record(actor, "ticket.attachment", target_type="ticket", target_id=ticket.number,
                          after={"attachment": att.id, "filename": name, "content_type": content_type,
                                 "size": len(data), "sha256": digest})
        path = self.path(att)
        _track(self.session, path)
        _write_atomically(path, data)
        return att

    def list(self, ticket: Ticket) -> list[Attachment]:
        return list(self.session.execute(select(Attachment).where(Attachment.ticket_id == ticket.id)
                                         .order_by(Attachment.uploaded_at, Attachment.id)).scalars())

    def get(self, ticket: Ticket, attachment_id: int | str) -> Attachment:
        """An attachment of ``ticket`` (whose visibility the caller checked); NotFound otherwise."""
        text = str(attachment_id).strip()
        att = None
        if text.isdigit() and len(text) <= 18:
            att = self.session.execute(select(Attachment).where(Attachment.id == int(text),
                                                                Attachment.ticket_id == ticket.id)).scalar()
        if att is None:
            raise NotFound(f"no attachment {attachment_id} on {ticket.number}")
        return att

    def read(self, att: Attachment) -> bytes:
        """The stored bytes, after checking size and SHA-256 against the row."""
        try:
            data = self.path(att).read_bytes()
        except FileNotFoundError as exc:
            log.error("attachment %s of ticket %s is missing on disk", att.id, att.ticket_id)
            raise AttachmentCorrupt("the attachment's file is missing; the administrators have been told") from exc
        if len(data) != att.size or hashlib.sha256(data).hexdigest() != att.sha256:
            log.error("attachment %s of ticket %s fails its checksum", att.id, att.ticket_id)
            raise AttachmentCorrupt("the attachment's file does not match its checksum and is not served")
        return data


def attachment_dict(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
            "sha256": a.sha256, "uploaded_by": a.uploaded_by, "uploaded_at": a.uploaded_at.isoformat()}
