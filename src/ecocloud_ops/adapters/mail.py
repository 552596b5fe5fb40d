"""Outgoing e-mail adapter: service desk notifications through the configured SMTP server (smtplib).

* :class:`SmtpSettings` describes the server (host, port, ``none``/``starttls``/``ssl``, optional login) and the
  platform's sender address; the password never appears in a ``repr`` or in a log line.
* :func:`build_message` turns an :class:`OutgoingMessage` into a standards-compliant
  :class:`email.message.EmailMessage`: Chinese subjects, display names and bodies are encoded (RFC 2047
  headers, UTF-8 MIME bodies), with ``Message-ID``, ``Date``, optional ``Reply-To`` and custom headers such as
  ``X-EcoCloud-Ticket``. Notifications are marked ``Auto-Submitted: auto-generated`` and
  ``X-Auto-Response-Suppress: All`` so that out-of-office robots do not answer them (an auto-reply would come
  back through the mail gateway as a ticket comment and start a loop).
* :func:`send` delivers a batch over **one** SMTP connection.

Result contract of :func:`send`:

* one :class:`SendResult` per message, in order;
* a recipient the server refuses (RCPT 4xx/5xx) is listed in :attr:`SendResult.refused`, never raised; if the
  server refuses every recipient of a message, that message has no accepted recipients and the batch goes on;
* a message the server refuses as a whole (sender refused, DATA refused) gets :attr:`SendResult.error`;
* failing to connect, to start TLS or to log in raises :class:`~ecocloud_ops.errors.AdapterError`
  (:class:`~ecocloud_ops.errors.Unreachable` / :class:`~ecocloud_ops.errors.Timeout` where it fits) naming
  ``host:port``: nothing was sent;
* if the connection breaks in the middle of the batch, the results say what was sent: the interrupted
  message and every later one get an ``error`` ("connection lost"), nothing is raised (a caller that re-sends
  the failed ones does not duplicate the delivered ones).
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Literal

from ..errors import AdapterError, ConfigError, Timeout, Unreachable

__all__ = [
    "DEFAULT_SENDER_NAME",
    "OutgoingMessage",
    "SendResult",
    "SmtpSettings",
    "build_message",
    "send",
]

log = logging.getLogger(__name__)

DEFAULT_SENDER_NAME = "生态云运维平台"
_DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
#: Headers :func:`build_message` writes itself; :attr:`OutgoingMessage.headers` cannot override them.
_RESERVED_HEADERS = frozenset(
    h.lower() for h in (
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To", "Sender",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    )
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII except ':' (RFC 5322 ftext)
_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how notifications are sent.

    ``port`` ``None`` means the standard port of ``security``: 25 (``none``), 587 (``starttls``),
    465 (``ssl``). ``ca_file`` adds a CA bundle (an internal CA) to the system ones; ``verify_tls`` ``False``
    accepts any certificate (only for a lab). ``local_hostname`` is the name sent in EHLO (default: this
    machine's host name, without a DNS lookup that can hang on an isolated network).
    """

    host: str
    port: int | None = None
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "noreply@localhost"
    sender_name: str = DEFAULT_SENDER_NAME
    timeout: float = 30.0
    #: Default ``Reply-To`` (e.g. the mail gateway's address) for messages that do not name one.
    reply_to: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("SMTP host must not be empty")
        if self.security not in _DEFAULT_PORTS:
            raise ConfigError(f"SMTP security must be one of none, starttls, ssl (got {self.security!r})")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"SMTP port must be 1-65535 (got {self.port})")
        if self.timeout <= 0:
            raise ConfigError("SMTP timeout must be positive")
        if not _ADDR_SPEC.match(self.sender):
            raise ConfigError(f"SMTP sender {self.sender!r} is not an e-mail address")
        if self.password is not None and not self.username:
            raise ConfigError("SMTP password given without a username")

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.security]

    @property
    def endpoint(self) -> str:
        """``host:port`` as error messages name it."""
        return f"{self.host}:{self.effective_port}"


@dataclass
class OutgoingMessage:
    """One notification. Addresses are ``user@example.cn`` or ``张三 <user@example.cn>``.

    ``headers`` adds headers such as ``X-EcoCloud-Ticket`` or ``In-Reply-To``/``References`` (threading); it
    cannot override the headers :func:`build_message` writes (From, To, Subject, Date, Message-ID...).
    ``message_id_domain`` is the right-hand side of the generated Message-ID (default: the sender's domain).
    ``bcc`` recipients get the message but appear in no header.
    """

    to: list[str]
    subject: str
    text: str
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reply_to: str | None = None
    message_id_domain: str | None = None


@dataclass(frozen=True)
class SendResult:
    """Outcome of one message: ``accepted`` recipients, ``refused`` ones (address → (SMTP code, server text))
    and ``error`` when the message as a whole was not sent."""

    message_id: str
    accepted: tuple[str, ...] = ()
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Every recipient accepted the message."""
        return self.error is None and not self.refused and bool(self.accepted)

    @property
    def delivered(self) -> bool:
        """At least one recipient accepted the message."""
        return self.error is None and bool(self.accepted)


# Building ------------------------------------------------------------------------------------------------
def _one_line(value: str) -> str:
    """Header text from user input (a ticket title): line breaks would inject headers; fold them to spaces."""
    return " ".join(value.split())


def _address_list(values: Sequence[str], what: str) -> list[str]:
    out = []
    for value in values:
        if "\r" in value or "\n" in value:
            raise ValueError(f"{what} address {value!r} contains a line break")
        pairs = getaddresses([value])
        if len(pairs) != 1 or not _ADDR_SPEC.match(pairs[0][1]):
            raise ValueError(f"{what} address {value!r} is not one valid e-mail address")
        out.append(value.strip())
    return out


def _addr_specs(values: Sequence[str]) -> list[str]:
    return [addr for _name, addr in getaddresses(list(values))]


def build_message(settings: SmtpSettings, msg: OutgoingMessage) -> EmailMessage:
    """Build the MIME message (text, plus an HTML alternative when given). Raises ``ValueError`` for an
    invalid address or custom header; a subject with line breaks is folded onto one line."""
    to = _address_list(msg.to, "To")
    cc = _address_list(msg.cc, "Cc")
    _address_list(msg.bcc, "Bcc")
    if not (to or cc or msg.bcc):
        raise ValueError("a message needs at least one recipient")
    reply_to = msg.reply_to or settings.reply_to
    # cte_type 7bit: bodies are base64/quoted-printable, so servers without 8BITMIME relay them unchanged
    em = EmailMessage(policy=policy.SMTP.clone(cte_type="7bit"))
    em["From"] = Address(display_name=settings.sender_name, addr_spec=settings.sender)
    if to:
        em["To"] = ", ".join(to)
    if cc:
        em["Cc"] = ", ".join(cc)
    if reply_to:
        em["Reply-To"] = ", ".join(_address_list([reply_to], "Reply-To"))
    em["Subject"] = _one_line(msg.subject)
    em["Date"] = formatdate(localtime=True)
    domain = msg.message_id_domain or settings.sender.rpartition("@")[2]
    em["Message-ID"] = make_msgid(domain=domain)
    em["Auto-Submitted"] = "auto-generated"
    em["X-Auto-Response-Suppress"] = "All"
    for name, value in msg.headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name} is written by build_message and cannot be overridden")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} contains a line break")
        if name in em:
            del em[name]
        em[name] = value
    em.set_content(msg.text, charset="utf-8")
    if msg.html is not None:
        em.add_alternative(msg.html, subtype="html", charset="utf-8")
    return em


# Sending -------------------------------------------------------------------------------------------------
def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    """Open, secure and authenticate one session; every failure becomes an AdapterError naming host:port."""
    where = settings.endpoint
    local = settings.local_hostname or socket.gethostname() or "localhost"
    smtp: smtplib.SMTP | None = None
    try:
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.host, settings.effective_port, local_hostname=local, timeout=settings.timeout,
                context=_tls_context(settings),
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.effective_port, local_hostname=local, timeout=settings.timeout)
        smtp.ehlo()
        if settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise AdapterError(f"SMTP server {where} does not offer STARTTLS (security=starttls)")
            smtp.starttls(context=_tls_context(settings))
            smtp.ehlo()
        if settings.username:
            if settings.security == "none":
                log.warning("logging in to SMTP server %s as %s without TLS", where, settings.username)
            smtp.login(settings.username, settings.password or "")
        return smtp
    except AdapterError:
        _close(smtp)
        raise
    except smtplib.SMTPAuthenticationError as exc:
        _close(smtp)
        raise AdapterError(
            f"SMTP server {where} refused the login of user {settings.username!r}: "
            f"{exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except TimeoutError as exc:
        _close(smtp)
        raise Timeout(f"SMTP server {where} did not answer within {settings.timeout:g} s") from exc
    except ssl.SSLError as exc:
        _close(smtp)
        raise AdapterError(f"TLS with SMTP server {where} failed: {exc}") from exc
    except smtplib.SMTPException as exc:
        _close(smtp)
        raise AdapterError(f"SMTP server {where} failed during connection set-up: {exc}") from exc
    except OSError as exc:
        _close(smtp)
        raise Unreachable(f"cannot connect to SMTP server {where}: {exc.strerror or exc}") from exc


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.close()
    except OSError:  # pragma: no cover - closing a broken socket
        pass


@contextmanager
def _session(settings: SmtpSettings) -> Iterator[smtplib.SMTP]:
    smtp = _connect(settings)
    try:
        yield smtp
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            _close(smtp)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusals(mapping: Mapping[str, tuple[int, bytes | str]]) -> dict[str, tuple[int, str]]:
    return {addr: (int(code), _text(text)) for addr, (code, text) in mapping.items()}


def send(settings: SmtpSettings, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
    """Send ``messages`` over one SMTP connection; see the module docstring for the result contract.

    Messages are built (and validated: ``ValueError``) before connecting, so a bad message sends nothing.
    """
    if not messages:
        return []
    built: list[tuple[EmailMessage, list[str]]] = []
    for msg in messages:
        em = build_message(settings, msg)
        rcpts = list(dict.fromkeys(_addr_specs([*msg.to, *msg.cc, *msg.bcc])))
        built.append((em, rcpts))
    results: list[SendResult] = []
    with _session(settings) as smtp:
        for index, (em, rcpts) in enumerate(built):
            message_id = str(em["Message-ID"])
            try:
                refused = _refusals(smtp.send_message(em, from_addr=settings.sender, to_addrs=rcpts))
            except smtplib.SMTPRecipientsRefused as exc:
                results.append(SendResult(message_id, refused=_refusals(exc.recipients)))
                continue
            except smtplib.SMTPSenderRefused as exc:
                results.append(SendResult(
                    message_id, error=f"sender {settings.sender} refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                ))
                continue
            except smtplib.SMTPDataError as exc:
                results.append(SendResult(
                    message_id, error=f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                ))
                continue
            except smtplib.SMTPNotSupportedError as exc:  # e.g. a non-ASCII address without SMTPUTF8
                results.append(SendResult(message_id, error=f"message not sendable: {exc}"))
                continue
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
                reason = f"connection to SMTP server {settings.endpoint} lost: {exc}"
                log.warning("%s (%d of %d messages sent)", reason, index, len(built))
                results.extend(SendResult(str(e["Message-ID"]), error=reason) for e, _ in built[index:])
                break
            accepted = tuple(r for r in rcpts if r not in refused)
            results.append(SendResult(message_id, accepted=accepted, refused=refused))
    sent = sum(1 for r in results if r.delivered)
    log.info("sent %d of %d messages via %s", sent, len(results), settings.endpoint)
    return results
