"""Incoming mail gateway: an SMTP server (aiosmtpd) that turns e-mail into service desk tickets or comments.

Deployment: the agency's mail server relays the service desk address(es) to this gateway, which listens on
loopback by default (``127.0.0.1:2525``). The gateway parses each message into an :class:`IncomingMail` and
hands it to a :class:`MailHandler` (the ticket service, wired in by the application), whose
:data:`Outcome` becomes the SMTP reply, so the sending server keeps or bounces the message:

============================  =========================================================================
situation                     SMTP reply
============================  =========================================================================
RCPT to another domain/addr   ``550 5.1.1`` at RCPT (the message is never accepted)
message over the size limit   ``552`` (announced SIZE at MAIL FROM, or counted during DATA); no handler
malformed MIME / no From      ``554 5.6.0 Malformed message: <why>``; no handler; the server keeps serving
unknown sender, ``reject``    ``550 5.7.1`` (``handler.is_known_sender`` said no; ``handle`` not called)
unknown sender, ``queue``     ``handle`` is called with ``sender_known=False`` (it should return Queued)
:class:`Accepted`             ``250 2.0.0 OK: ticket INC-2026-000123 created`` / ``updated``
:class:`Queued`               ``250 2.0.0 OK: queued for review``
:class:`Rejected`             ``<smtp_code> <reason>`` (4xx or 5xx, e.g. ``550 5.7.1 unknown sender``)
the handler raises            ``451 4.3.0`` (logged): the sending server retries later, no mail is lost
============================  =========================================================================

The handler runs in a worker thread (``loop.run_in_executor`` on a pool of ``handler_threads``), never on the
event loop, so it may do blocking database work; it must be thread-safe (one database session per call).
A retried message arrives again with the same ``message_id``: a handler that may fail *after* committing
should de-duplicate on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import fnmatch
import hashlib
import logging
import mimetypes
import re
import socket
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import errors as email_errors
from email import policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from html.parser import HTMLParser
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..errors import AdapterError, ConfigError

__all__ = [
    "DEFAULT_ATTACHMENT_TYPES",
    "TICKET_NUMBER_RE",
    "Accepted",
    "Attachment",
    "DroppedAttachment",
    "GatewaySettings",
    "IncomingMail",
    "MailGateway",
    "MailHandler",
    "Outcome",
    "Queued",
    "Rejected",
    "find_ticket_number",
    "html_to_text",
    "outcome_reply",
    "parse_message",
    "strip_quoted_reply",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: A ticket number anywhere in a subject. ``re.ASCII`` so that ``\b`` also separates it from adjacent Chinese
#: characters (in Unicode mode 汉字 are word characters: ``工单INC-2026-000123`` would not match).
TICKET_NUMBER_RE = re.compile(r"\b(INC|REQ|PRB|CHG)-\d{4}-\d{6}\b", re.IGNORECASE | re.ASCII)

#: Attachment content types accepted by default (``fnmatch`` patterns, matched lower-case).
DEFAULT_ATTACHMENT_TYPES: tuple[str, ...] = (
    "image/*", "text/plain", "text/csv", "application/pdf",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.*", "application/vnd.oasis.opendocument.*",
    "application/kswps", "application/kset", "application/ksdps",  # WPS Office
    "application/zip", "application/x-zip-compressed", "application/x-7z-compressed",
    "application/vnd.rar", "application/x-rar-compressed", "application/gzip", "application/x-tar",
    "message/rfc822", "application/vnd.ms-outlook",
)
#: Never kept whatever the declared type: executables and scripts.
_DANGEROUS_EXTENSIONS = frozenset({
    ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".msi", ".msp", ".dll", ".cpl", ".js", ".jse", ".vbs",
    ".vbe", ".wsf", ".wsh", ".ps1", ".hta", ".jar", ".lnk", ".reg", ".sh",
})
_SYNTHETIC_ID_DOMAIN = "ecocloud-ops.invalid"
_FATAL_DEFECTS = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)
_GB_CHARSETS = frozenset({"gb2312", "gbk", "x-gbk", "gb_2312-80", "cp936", "euc-cn", "x-euc-cn"})


# Settings and data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewaySettings:
    """Listener and acceptance policy of the gateway.

    ``accepted_recipients`` names the domains (``hbj.gov.cn``) and/or full addresses
    (``servicedesk@hbj.gov.cn``) the gateway takes mail for; RCPT to anything else is refused. It is required:
    a gateway that takes mail for any address would turn every stray message into a ticket.
    ``port`` 0 picks a free port (see :attr:`MailGateway.port`). Attachments whose type matches none of
    ``allowed_attachment_types`` (``application/octet-stream`` is judged by the file name's extension), whose
    extension is executable, or larger than ``max_attachment_bytes`` are removed from the mail and listed in
    :attr:`IncomingMail.dropped_attachments`; the message itself is still accepted.
    """

    accepted_recipients: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_bytes: int = 10 * MiB
    unknown_senders: Literal["reject", "queue"] = "reject"
    allowed_attachment_types: tuple[str, ...] = DEFAULT_ATTACHMENT_TYPES
    max_attachment_bytes: int = 5 * MiB
    #: Name in the 220 greeting and EHLO reply (no DNS look-up at start).
    server_name: str = "ecocloud-ops"
    #: Worker threads that run the handler (parallel SMTP sessions beyond this wait).
    handler_threads: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.accepted_recipients, str):
            raise ConfigError("mail gateway accepted_recipients must be a list of domains or addresses")
        entries = tuple(e.strip().lower().lstrip("@") for e in self.accepted_recipients if e.strip())
        if not entries:
            raise ConfigError("mail gateway accepted_recipients must name at least one domain or address")
        object.__setattr__(self, "accepted_recipients", entries)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"mail gateway port must be 0-65535 (got {self.port})")
        if self.max_message_bytes < 1024:
            raise ConfigError("mail gateway max_message_bytes must be at least 1024")
        if self.max_attachment_bytes < 1:
            raise ConfigError("mail gateway max_attachment_bytes must be positive")
        if self.unknown_senders not in ("reject", "queue"):
            raise ConfigError(f"mail gateway unknown_senders must be reject or queue (got {self.unknown_senders!r})")
        if self.handler_threads < 1:
            raise ConfigError("mail gateway handler_threads must be at least 1")

    def accepts(self, address: str) -> bool:
        """Whether RCPT TO ``address`` is one of ours (case-insensitive, exact domain or exact address)."""
        address = address.strip().strip("<>").lower()
        local, at, domain = address.rpartition("@")
        if not (local and at and domain):
            return False
        return address in self.accepted_recipients or domain in self.accepted_recipients


class Attachment(NamedTuple):
    """A kept attachment: a safe base file name (no directories), the content type and the decoded bytes."""

    filename: str
    content_type: str
    data: bytes


class DroppedAttachment(NamedTuple):
    """An attachment removed by the gateway's policy, for a note on the ticket."""

    filename: str
    content_type: str
    size: int
    reason: str


@dataclass(frozen=True)
class IncomingMail:
    """One parsed message.

    ``text`` is the new part of the body (quoted reply tails removed; the whole body when removing them would
    leave nothing or the subject says it is a forward); ``full_text`` is the decoded body as sent.
    ``message_id`` is the Message-ID header, or a stable ``<sha256@ecocloud-ops.invalid>`` of the raw bytes when
    missing. ``spoof_suspect`` is set when the envelope sender (MAIL FROM) differs from the From address
    (forwarders and mailing lists do that legitimately; it is a hint, not a verdict). ``auto_submitted`` marks
    robots (Auto-Submitted, Precedence bulk/junk/auto_reply, X-Autoreply, null sender): a handler should not
    answer those. ``sender_known`` is False when the gateway's ``queue`` policy let an unknown sender through.
    """

    envelope_from: str
    from_address: str
    from_name: str
    subject: str
    text: str
    ticket_number: str | None
    message_id: str
    spoof_suspect: bool
    attachments: tuple[Attachment, ...] = ()
    dropped_attachments: tuple[DroppedAttachment, ...] = ()
    recipients: tuple[str, ...] = ()
    full_text: str = ""
    date: datetime | None = None
    auto_submitted: bool = False
    sender_known: bool = True
    size: int = 0


@dataclass(frozen=True)
class Accepted:
    """The mail created ticket ``ticket_number`` (``created``) or was added to it as a comment."""

    ticket_number: str
    created: bool


@dataclass(frozen=True)
class Queued:
    """The mail was stored for a person to review (e.g. unknown sender, suspected spoofing)."""

    reason: str


@dataclass(frozen=True)
class Rejected:
    """Refuse the mail: 5xx bounces it to the sender, 4xx makes the sending server retry later.
    ``reason`` should be short English text (SMTP replies are ASCII; other characters become ``?``)."""

    smtp_code: int = 550
    reason: str = "5.7.1 Message rejected"

    def __post_init__(self) -> None:
        if not 400 <= self.smtp_code <= 599:
            raise ValueError(f"Rejected.smtp_code must be 4xx or 5xx (got {self.smtp_code})")


Outcome = Accepted | Queued | Rejected


class MailHandler(Protocol):
    """The application's callback; both methods run in a worker thread and may block (database work)."""

    def is_known_sender(self, address: str) -> bool:
        """Whether ``address`` (the From address, lower-case) belongs to someone the service desk knows."""
        ...

    def handle(self, mail: IncomingMail) -> Outcome:
        """Create a ticket, add a comment to ``mail.ticket_number``, queue, or reject the mail."""
        ...


# Parsing ------------------------------------------------------------------------------------------------
def find_ticket_number(subject: str) -> str | None:
    """The first ticket number in ``subject``, upper-case (``inc-2026-000123`` → ``INC-2026-000123``)."""
    m = TICKET_NUMBER_RE.search(subject)
    return m.group(0).upper() if m else None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text bytes of a declared (often wrong) charset. GB2312/GBK labels are read as GB18030 (their
    superset: Chinese mailers label GBK text as GB2312); unknown or lying labels fall back to UTF-8, then
    GB18030, then UTF-8 with replacement characters."""
    candidates: list[str] = []
    if charset:
        cs = charset.strip().strip('"').lower()
        candidates.append("gb18030" if cs in _GB_CHARSETS else cs)
    candidates += ["utf-8", "gb18030"]
    for cs in candidates:
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace")


def _decode_header_text(raw: str) -> str:
    """Decode an unstructured header (Subject) from its raw form: RFC 2047 encoded words in any charset
    (GB2312 read as GB18030) and raw 8-bit bytes (UTF-8 or GBK), unfolded onto one line."""
    parts: list[str] = []
    for chunk, charset in decode_header(raw):
        if isinstance(chunk, str):  # no encoded word at all: surrogates stand for raw 8-bit bytes
            parts.append(_decode_bytes(chunk.encode("utf-8", "surrogateescape"), None))
        elif charset is None:  # unencoded text between encoded words
            parts.append(_decode_bytes(chunk.decode("raw-unicode-escape").encode("utf-8", "surrogateescape"), None))
        else:
            parts.append(_decode_bytes(chunk, charset))
    return " ".join("".join(parts).split())


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _from_header(msg: EmailMessage) -> tuple[str, str]:
    raw = _raw_header(msg, "From")
    if raw is None or not raw.strip():
        raise ValueError("the message has no From header")
    name = addr = ""
    try:
        addresses = msg["From"].addresses
        if addresses:
            name, addr = addresses[0].display_name, addresses[0].addr_spec
    except (AttributeError, IndexError, ValueError, email_errors.HeaderParseError):
        pass  # fall back to parseaddr below
    raw_8bit = "\ufffd" in name or any("\udc80" <= ch <= "\udcff" for ch in name)  # undecoded 8-bit bytes
    if "@" not in addr or raw_8bit:  # unparsable for the header registry, or raw 8-bit display name
        raw_name, raw_addr = parseaddr(raw)
        addr = addr if "@" in addr else raw_addr
        name = _decode_header_text(raw_name) if raw_name else name
    local, _, domain = addr.rpartition("@")
    if not local or not domain or any(c.isspace() for c in addr):
        raise ValueError(f"the From header {raw.strip()[:120]!r} holds no valid e-mail address")
    return addr.lower(), " ".join(name.split())


def _is_auto_submitted(msg: EmailMessage, envelope_from: str) -> bool:
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    precedence = (msg.get("Precedence") or "").strip().lower()
    return (
        (bool(auto) and auto != "no")
        or precedence in ("bulk", "junk", "list", "auto_reply")
        or "X-Autoreply" in msg or "X-Autorespond" in msg
        or not envelope_from
    )


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = _decode_bytes(payload, part.get_content_charset())
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _HtmlText(HTMLParser):
    """Crude HTML → text: block elements end lines, script/style are dropped, <blockquote> lines get "> "."""

    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                        "pre", "hr", "blockquote", "section", "article", "header", "footer"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._line_quote = 0
        self._quote = 0
        self._skip = 0

    def _newline(self, force: bool = False) -> None:
        """End the current line; an empty one only for <br> (consecutive block boundaries make one break)."""
        text = " ".join("".join(self._current).split())
        if text or force:
            self.lines.append(("> " * self._line_quote + text) if text else "")
        self._current = []
        self._line_quote = self._quote

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self._newline(force=tag == "br")
            if tag == "blockquote":
                self._quote += 1
                self._line_quote = self._quote
        elif tag in ("td", "th"):
            self._current.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "hr"):  # void elements: the start tag already ended the line
            return
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self._newline()
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)
                self._line_quote = self._quote

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data.replace("\xa0", " "))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (for mails without a text/plain part)."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    parser._newline()
    text = "\n".join(parser.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_REPLY_SEPARATOR = re.compile(
    r"^[-_=\s]{2,}\s*(original message|原始邮件|邮件原件|原邮件|回复的原邮件)\s*[-_=\s]{2,}$", re.IGNORECASE,
)
_WROTE_ZH = re.compile(r"写道\s*[:：]\s*$")
_WROTE_EN = re.compile(r"^on\b.{0,300}\bwrote:\s*$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\*?(from|发件人)\*?\s*[:：]", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\*?(sent|date|to|发送时间|日期|时间|收件人)\*?\s*[:：]", re.IGNORECASE)
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|转发)\s*[:：]", re.IGNORECASE)


def _reply_tail_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        s = line.strip().replace("\xa0", " ")
        if not s or s.startswith(">"):
            continue
        if _REPLY_SEPARATOR.match(s) or _WROTE_ZH.search(s) or _WROTE_EN.match(s):
            return i
        if s.lower().startswith("on ") and i + 1 < len(lines) and lines[i + 1].strip().lower().endswith("wrote:"):
            return i  # Gmail wraps long "On <date>, <name> <addr>\nwrote:" attributions
        if _HEADER_FROM.match(s) and any(_HEADER_NEXT.match(n.strip()) for n in lines[i + 1:i + 5]):
            return i  # Outlook without separator: From:/Sent:/To:/Subject: (发件人/发送时间/收件人/主题)
    return None


def strip_quoted_reply(text: str) -> str:
    """The reply's own text: cut at the first quoted-tail marker ("-----Original Message-----",
    "-----原始邮件-----", "在 … 写道：", "On … wrote:", an Outlook From:/Sent: block), drop lines starting
    with ">" and trailing separator lines. Returns the text unchanged when nothing would be left."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = _reply_tail_start(lines)
    if cut is not None:
        lines = lines[:cut]
    lines = [line for line in lines if not line.startswith(">")]
    while lines and not lines[-1].strip(" \t-_=*\xa0"):
        lines.pop()
    result = "\n".join(line.rstrip() for line in lines).strip("\n")
    return result if result.strip() else text.strip()


def _safe_filename(name: str | None, index: int, content_type: str) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip().strip(".") or ""
    if not name:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        return f"attachment-{index}{ext}"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot and len(ext) <= 9 else name[:200]
    return name


def _drop_reason(att: Attachment, settings: GatewaySettings) -> str | None:
    ext = ("." + att.filename.rsplit(".", 1)[-1].lower()) if "." in att.filename else ""
    if ext in _DANGEROUS_EXTENSIONS:
        return f"file type {ext} is not allowed"
    ctype = att.content_type.lower()
    if ctype == "application/octet-stream":
        ctype = (mimetypes.guess_type(att.filename)[0] or ctype).lower()
    if not any(fnmatch.fnmatchcase(ctype, pattern.lower()) for pattern in settings.allowed_attachment_types):
        return f"content type {ctype} is not allowed"
    if len(att.data) > settings.max_attachment_bytes:
        return f"larger than {settings.max_attachment_bytes} bytes"
    return None


def _collect_attachments(part: Message, body: Message | None, out: list[Attachment]) -> None:
    if part is body:
        return
    ctype = part.get_content_type()
    if ctype == "message/rfc822":  # a forwarded message: keep it whole as an .eml attachment
        inner = part.get_payload(0) if part.is_multipart() else None
        data = inner.as_bytes() if isinstance(inner, Message) else b""
        out.append(Attachment(_safe_filename(part.get_filename(), len(out) + 1, ctype) if part.get_filename()
                              else f"forwarded-{len(out) + 1}.eml", ctype, data))
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _collect_attachments(sub, body, out)
        return
    filename = part.get_filename()
    if ctype in ("text/plain", "text/html") and not filename and part.get_content_disposition() != "attachment":
        return  # an alternative of the body, not a file
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    out.append(Attachment(_safe_filename(filename, len(out) + 1, ctype), ctype, data))


def _parse(raw: bytes, envelope_from: str, recipients: Sequence[str], settings: GatewaySettings | None) -> IncomingMail:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    if not msg.keys():
        raise ValueError("the message has no header section")
    for part in msg.walk():
        fatal = [d for d in part.defects if isinstance(d, _FATAL_DEFECTS)]
        if fatal:
            raise ValueError(f"broken MIME structure: {type(fatal[0]).__name__} ({fatal[0]})")
    from_address, from_name = _from_header(msg)
    raw_subject = _raw_header(msg, "Subject")
    subject = _decode_header_text(raw_subject) if raw_subject else ""
    message_id = " ".join(str(msg.get("Message-ID") or "").split())
    if not message_id:
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@{_SYNTHETIC_ID_DOMAIN}>"
    date: datetime | None = None
    date_header = msg.get("Date")
    if date_header is not None:
        date = getattr(date_header, "datetime", None)

    body = msg.get_body(preferencelist=("plain", "html"))
    full_text = ""
    if body is not None:
        full_text = _part_text(body)
        if body.get_content_type() == "text/html":
            full_text = html_to_text(full_text)
    full_text = full_text.strip("\n")
    text = full_text if _FORWARD_SUBJECT.match(subject) else strip_quoted_reply(full_text)

    found: list[Attachment] = []
    _collect_attachments(msg, body, found)
    kept: list[Attachment] = []
    dropped: list[DroppedAttachment] = []
    for att in found:
        reason = _drop_reason(att, settings) if settings is not None else None
        if reason is None:
            kept.append(att)
        else:
            dropped.append(DroppedAttachment(att.filename, att.content_type, len(att.data), reason))

    envelope_from = _normalize_envelope(envelope_from)
    return IncomingMail(
        envelope_from=envelope_from,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        text=text,
        ticket_number=find_ticket_number(subject),
        message_id=message_id,
        spoof_suspect=envelope_from != from_address,
        attachments=tuple(kept),
        dropped_attachments=tuple(dropped),
        recipients=tuple(r.lower() for r in recipients),
        full_text=full_text,
        date=date,
        auto_submitted=_is_auto_submitted(msg, envelope_from),
        size=len(raw),
    )


def _normalize_envelope(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address.strip().lower()


def parse_message(
    raw: bytes,
    envelope_from: str,
    *,
    recipients: Sequence[str] = (),
    settings: GatewaySettings | None = None,
) -> IncomingMail:
    """Parse one message as received (``raw``: the DATA bytes; ``envelope_from``: MAIL FROM, ``""``/``"<>"`` for
    the null sender). With ``settings``, its attachment policy is applied.

    Raises ``ValueError`` with a short explanation for an unusable message: empty, no header section, no From
    address, or a broken multipart structure (no boundary / boundary never found). Any unexpected failure of
    the ``email`` package on hostile input is reported the same way, never as another exception.
    """
    if not raw or not raw.strip():
        raise ValueError("the message is empty")
    try:
        return _parse(raw, envelope_from, recipients, settings)
    except ValueError:
        raise
    except Exception as exc:  # the email package can fail in odd ways on hostile input
        raise ValueError(f"unreadable message ({type(exc).__name__}: {exc})") from exc


# The SMTP server ----------------------------------------------------------------------------------------
def _ascii_reply(text: str, limit: int = 300) -> str:
    """One line of printable ASCII for an SMTP reply (clients without SMTPUTF8 choke on anything else)."""
    text = " ".join(text.split())
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:limit]


def outcome_reply(outcome: Outcome) -> str:
    """The SMTP reply line of a handler outcome."""
    if isinstance(outcome, Accepted):
        verb = "created" if outcome.created else "updated"
        return f"250 2.0.0 OK: ticket {_ascii_reply(outcome.ticket_number, 40)} {verb}"
    if isinstance(outcome, Queued):
        return "250 2.0.0 OK: queued for review"
    if isinstance(outcome, Rejected):
        return f"{outcome.smtp_code} {_ascii_reply(outcome.reason) or 'Message rejected'}"
    raise TypeError(f"mail handler returned {outcome!r}, not Accepted, Queued or Rejected")


_TEMPFAIL = "451 4.3.0 Temporary failure processing the message, please retry later"


class _Hooks:
    """aiosmtpd handler: RCPT policy and DATA processing (off the event loop)."""

    def __init__(self, settings: GatewaySettings, handler: MailHandler,
                 executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self.settings = settings
        self.handler = handler
        self.executor = executor

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.settings.accepts(address):
            log.info("mail gateway refused recipient %s from %s", address, envelope.mail_from)
            return f"550 5.1.1 <{_ascii_reply(address, 200)}>: recipient not accepted by this service desk"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.executor, self.process, bytes(raw), envelope.mail_from or "", tuple(envelope.rcpt_tos),
            )
        except Exception:  # the executor itself failed (shutting down); process() catches the handler's
            log.exception("mail gateway could not process a message from %s", envelope.mail_from)
            return _TEMPFAIL

    async def handle_exception(self, error: Exception) -> str:
        log.error("mail gateway SMTP session error", exc_info=error)
        return "451 4.3.0 Internal error, please retry later"

    def process(self, raw: bytes, mail_from: str, rcpts: tuple[str, ...]) -> str:
        """Parse, apply the sender policy, call the handler; returns the SMTP reply (runs in a worker thread)."""
        try:
            mail = parse_message(raw, mail_from, recipients=rcpts, settings=self.settings)
        except ValueError as exc:
            log.warning("mail gateway rejected a malformed message from %s: %s", mail_from, exc)
            return f"554 5.6.0 Malformed message: {_ascii_reply(str(exc))}"
        try:
            if not self.handler.is_known_sender(mail.from_address):
                if self.settings.unknown_senders == "reject":
                    log.info("mail gateway rejected %s from unknown sender %s", mail.message_id, mail.from_address)
                    return f"550 5.7.1 Sender <{_ascii_reply(mail.from_address, 200)}> is not known to the service desk"
                mail = dataclasses.replace(mail, sender_known=False)
            outcome = self.handler.handle(mail)
            reply = outcome_reply(outcome)
        except Exception:
            log.exception("mail handler failed on %s from %s; replied 451 so the sender retries",
                          mail.message_id, mail.from_address)
            return _TEMPFAIL
        log.info("mail gateway: %s from %s (ticket %s) -> %s", mail.message_id, mail.from_address,
                 mail.ticket_number or "-", reply)
        return reply


class _BoundController(Controller):
    """aiosmtpd Controller serving on a socket bound beforehand (so port 0 works and binding errors are ours)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise AdapterError(f"mail gateway cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class MailGateway:
    """The incoming SMTP server. ``start()``/``stop()`` or ``with MailGateway(...) as gw:``; the server runs in
    its own thread (aiosmtpd's threaded :class:`~aiosmtpd.controller.Controller`)."""

    def __init__(self, settings: GatewaySettings, handler: MailHandler) -> None:
        self.settings = settings
        self.handler = handler
        self._controller: _BoundController | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._address: tuple[str, int] | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (the real port when ``settings.port`` is 0)."""
        if self._address is None:
            raise RuntimeError("the mail gateway is not running")
        return self._address

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> None:
        """Bind and serve; raises :class:`AdapterError` when the address cannot be bound."""
        if self._controller is not None:
            raise RuntimeError("the mail gateway is already running")
        s = self.settings
        sock = _listen(s.host, s.port)
        executor = concurrent.futures.ThreadPoolExecutor(s.handler_threads, thread_name_prefix="mail-gateway")
        controller = _BoundController(
            _Hooks(s, self.handler, executor), sock,
            server_hostname=s.server_name, ident="ecocloud-ops mail gateway", data_size_limit=s.max_message_bytes,
        )
        try:
            controller.start()
        except Exception as exc:
            sock.close()
            executor.shutdown(wait=False)
            try:
                controller.stop(no_assert=True)
            except Exception:  # pragma: no cover - best effort after a failed start
                pass
            raise AdapterError(f"mail gateway failed to start on {s.host}:{s.port}: {exc}") from exc
        self._controller, self._executor = controller, executor
        host, port = sock.getsockname()[:2]
        self._address = (host, port)
        log.info("mail gateway listening on %s:%d for %s", host, port, ", ".join(s.accepted_recipients))

    def stop(self) -> None:
        """Stop serving; waits for handler calls in progress (their sessions are cut: senders retry)."""
        controller, executor = self._controller, self._executor
        self._controller = self._executor = None
        self._address = None
        if controller is not None:
            controller.stop()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if controller is not None:
            log.info("mail gateway stopped")

    def __enter__(self) -> MailGateway:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
