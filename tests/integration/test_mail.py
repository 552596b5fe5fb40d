"""E-mail against real SMTP peers on loopback: the outgoing adapter talks SMTP to an aiosmtpd server, and real
smtplib sessions drive the incoming mail gateway (whose handler is the application's own callback). No
database is involved."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ecocloud_ops.adapters.mail import OutgoingMessage, SmtpSettings, build_message, send
from ecocloud_ops.errors import AdapterError, ConfigError
from ecocloud_ops.servicedesk.mailgateway import (
    Accepted,
    GatewaySettings,
    IncomingMail,
    MailGateway,
    Outcome,
    Queued,
    Rejected,
    find_ticket_number,
    html_to_text,
    parse_message,
    strip_quoted_reply,
)

LOCAL = "127.0.0.1"
SMTP_USER, SMTP_PASSWORD = "desk-notify", "Very-Secret-Pw-42"
STAFF = "zhang.san@agency.example.cn"
DESK = "desk@servicedesk.example.cn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


# A real SMTP server that records what it receives -------------------------------------------------------
@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any

    @property
    def message(self) -> EmailMessage:
        msg = BytesParser(policy=policy.default).parsebytes(self.content)
        assert isinstance(msg, EmailMessage)
        return msg


class RecordingPeer:
    """aiosmtpd handler: refuses recipients named nobody@..., records every accepted transaction."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.logins: list[bytes] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.deliveries.append(Delivery(str(envelope.mail_from), list(envelope.rcpt_tos),
                                        envelope.original_content, session.peer))
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(auth_data.login)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


@pytest.fixture
def smtp_peer() -> Iterator[tuple[RecordingPeer, int]]:
    peer = RecordingPeer()
    port = free_port()
    controller = Controller(peer, hostname=LOCAL, port=port, server_hostname="smtp.test")
    controller.start()
    try:
        yield peer, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also used as the client's CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecocloud test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCAL))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def settings_for(port: int, **kw: Any) -> SmtpSettings:
    values: dict[str, Any] = {"host": LOCAL, "port": port, "security": "none", "sender": "ops@ecocloud.example.cn",
                              "timeout": 5.0, "local_hostname": "ecocloud.test"}
    values.update(kw)
    return SmtpSettings(**values)


# Outgoing -----------------------------------------------------------------------------------------------
def test_two_chinese_notifications_over_one_connection(smtp_peer: tuple[RecordingPeer, int]) -> None:
    peer, port = smtp_peer
    settings = settings_for(port, reply_to="desk@servicedesk.example.cn")
    first = OutgoingMessage(
        to=["张三 <zhang.san@agency.example.cn>"], cc=["li.si@agency.example.cn"],
        subject="[INC-2026-000123] 网络中断：河北省石家庄市 链路 down",
        text="您好，\n工单 INC-2026-000123 已受理，处理人：王五。\n",
        html="<p>您好，</p><p>工单 <b>INC-2026-000123</b> 已受理。</p>",
        headers={"X-EcoCloud-Ticket": "INC-2026-000123"},
        message_id_domain="ecocloud.example.cn",
    )
    second = OutgoingMessage(
        to=["wang.wu@agency.example.cn"], bcc=["audit@agency.example.cn"],
        subject="[REQ-2026-000007] 账号申请已完成", text="账号已开通。",
        headers={"X-EcoCloud-Ticket": "REQ-2026-000007"}, reply_to="req@servicedesk.example.cn",
    )
    results = send(settings, [first, second])

    assert [r.ok for r in results] == [True, True]
    assert results[0].accepted == ("zhang.san@agency.example.cn", "li.si@agency.example.cn")
    assert len(peer.deliveries) == 2
    assert peer.deliveries[0].peer == peer.deliveries[1].peer  # one connection: same client socket
    d1, d2 = peer.deliveries
    assert d1.mail_from == "ops@ecocloud.example.cn"
    assert d1.rcpt_tos == ["zhang.san@agency.example.cn", "li.si@agency.example.cn"]
    assert d2.rcpt_tos == ["wang.wu@agency.example.cn", "audit@agency.example.cn"]
    assert all(b < 0x80 for b in d1.content)  # Chinese travels encoded (RFC 2047 / base64), 7-bit clean

    m1, m2 = d1.message, d2.message
    assert m1["Subject"] == first.subject
    assert m1["From"].addresses[0].display_name == "生态云运维平台"
    assert m1["To"].addresses[0].display_name == "张三"
    assert m1["Reply-To"] == "desk@servicedesk.example.cn"
    assert m1["X-EcoCloud-Ticket"] == "INC-2026-000123"
    assert m1["Message-ID"] == results[0].message_id and m1["Message-ID"].endswith("@ecocloud.example.cn>")
    assert m1["Date"].datetime is not None
    assert m1["Auto-Submitted"] == "auto-generated"
    body = m1.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == first.text  # base64 of CRLF text
    html = m1.get_body(("html",))
    assert html is not None and "<b>INC-2026-000123</b>" in html.get_content()
    assert m2["Subject"] == "[REQ-2026-000007] 账号申请已完成"
    assert m2["Reply-To"] == "req@servicedesk.example.cn"
    assert "Bcc" not in m2
    body2 = m2.get_body(("plain",))
    assert body2 is not None and body2.get_content().strip() == "账号已开通。"


def test_refused_recipients_are_reported_not_raised(smtp_peer: tuple[RecordingPeer, int]) -> None:
    peer, port = smtp_peer
    messages = [
        OutgoingMessage(to=["ok@agency.example.cn", "nobody@agency.example.cn"], subject="部分拒收", text="x"),
        OutgoingMessage(to=["nobody@agency.example.cn"], subject="全部拒收", text="y"),
        OutgoingMessage(to=["after@agency.example.cn"], subject="之后照常", text="z"),
    ]
    partial, refused, after = send(settings_for(port), messages)

    assert partial.accepted == ("ok@agency.example.cn",) and partial.delivered and not partial.ok
    assert partial.refused == {"nobody@agency.example.cn": (550, "5.1.1 No such user")}
    assert refused.accepted == () and not refused.delivered and refused.error is None
    assert refused.refused["nobody@agency.example.cn"][0] == 550
    assert after.ok
    assert [d.rcpt_tos for d in peer.deliveries] == [["ok@agency.example.cn"], ["after@agency.example.cn"]]


def test_unreachable_server_raises_adapter_error_naming_host_and_port() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(AdapterError, match=rf"127\.0\.0\.1:{port}"):
        send(settings_for(port), [OutgoingMessage(to=[STAFF], subject="s", text="t")])


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login_never_log_the_password(
    security: str, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture,
) -> None:
    cert_file, key_file = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    peer = RecordingPeer()
    port = free_port()
    tls: dict[str, Any] = (
        {"tls_context": server_ctx, "require_starttls": True} if security == "starttls"
        else {"ssl_context": server_ctx, "auth_require_tls": False}  # implicit TLS: the session is TLS already
    )
    controller = Controller(peer, hostname=LOCAL, port=port, server_hostname="smtp.test",
                            authenticator=peer.authenticate, **tls)
    controller.start()
    caplog.set_level(logging.DEBUG)
    try:
        settings = settings_for(port, security=security, ca_file=str(cert_file), username=SMTP_USER,
                                password=SMTP_PASSWORD)
        assert SMTP_PASSWORD not in repr(settings)
        [result] = send(settings, [OutgoingMessage(to=[STAFF], subject="加密通道", text="TLS 测试")])
        assert result.ok and peer.logins == [SMTP_USER.encode()]
        assert peer.deliveries[0].message["Subject"] == "加密通道"

        wrong = settings_for(port, security=security, ca_file=str(cert_file), username=SMTP_USER,
                             password="Wrong-Password-1")
        with pytest.raises(AdapterError, match=rf"127\.0\.0\.1:{port}.*refused the login") as info:
            send(wrong, [OutgoingMessage(to=[STAFF], subject="s", text="t")])
        assert "Wrong-Password-1" not in str(info.value)

        untrusted = settings_for(port, security=security, username=SMTP_USER, password=SMTP_PASSWORD)
        with pytest.raises(AdapterError, match="TLS .* failed"):  # self-signed, no ca_file: verification fails
            send(untrusted, [OutgoingMessage(to=[STAFF], subject="s", text="t")])
    finally:
        controller.stop()
    assert SMTP_PASSWORD not in caplog.text and "Wrong-Password-1" not in caplog.text
    assert len(peer.deliveries) == 1


def test_build_message_refuses_header_injection() -> None:
    settings = settings_for(25)
    msg = build_message(settings, OutgoingMessage(to=[STAFF], subject="第一行\r\nBcc: evil@x.example", text="t"))
    assert "Bcc" not in msg and msg["Subject"] == "第一行 Bcc: evil@x.example"
    with pytest.raises(ValueError, match="line break"):
        build_message(settings, OutgoingMessage(to=[STAFF], subject="s", text="t", headers={"X-A": "1\r\nBcc: e@x"}))
    with pytest.raises(ValueError, match="cannot be overridden"):
        build_message(settings, OutgoingMessage(to=[STAFF], subject="s", text="t", headers={"From": "e@x.example"}))
    with pytest.raises(ValueError, match="not one valid"):
        build_message(settings, OutgoingMessage(to=["a@x.example, b@x.example"], subject="s", text="t"))


# Incoming -----------------------------------------------------------------------------------------------
class RecordingHandler:
    """The application's callback, recording what it gets (this is our own interface, not a mocked peer)."""

    def __init__(self, outcome: Callable[[IncomingMail], Outcome] | None = None,
                 known: set[str] | None = None) -> None:
        self.mails: list[IncomingMail] = []
        self.threads: list[str] = []
        self.failures_left = 0
        self.known = known
        self._outcome = outcome or (lambda m: Accepted(m.ticket_number or "INC-2026-000999", m.ticket_number is None))
        self._lock = threading.Lock()

    def is_known_sender(self, address: str) -> bool:
        return self.known is None or address in self.known

    def handle(self, mail: IncomingMail) -> Outcome:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            if self.failures_left:
                self.failures_left -= 1
                raise RuntimeError("database is down")
            self.mails.append(mail)
        return self._outcome(mail)


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., MailGateway]]:
    started: list[MailGateway] = []

    def start(handler: RecordingHandler, **overrides: Any) -> MailGateway:
        settings = GatewaySettings(
            accepted_recipients=("servicedesk.example.cn", "itsm@agency.example.cn"), port=0, **overrides,
        )
        gateway = MailGateway(settings, handler)
        gateway.start()
        started.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


def compose(subject: str, text: str, *, sender: str = STAFF, name: str = "张三", to: str = DESK,
            html: str | None = None, attachments: tuple[tuple[str, str, bytes], ...] = (),
            headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((subject, text)))}@agency.example.cn>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP)


def connect(gateway: MailGateway) -> smtplib.SMTP:
    return smtplib.SMTP(LOCAL, gateway.port, local_hostname="mx.agency.example.cn", timeout=10)


def transact(client: smtplib.SMTP, raw: bytes, mail_from: str = STAFF, rcpts: tuple[str, ...] = (DESK,),
             ) -> tuple[int, str]:
    """One transaction without SIZE (so size limits are checked while DATA streams); the first non-2xx reply."""
    client.ehlo_or_helo_if_needed()
    code, text = client.mail(mail_from)
    if code != 250:
        return code, text.decode()
    for rcpt in rcpts:
        code, text = client.rcpt(rcpt)
        if code not in (250, 251):
            client.rset()
            return code, text.decode()
    code, text = client.data(raw)
    return code, text.decode()


def test_new_message_reaches_the_handler_in_a_worker_thread(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler)
    assert gateway.address[0] == LOCAL
    with connect(gateway) as client:
        code, reply = transact(client, compose("打印机无法连接网络", "三楼打印机从今早开始无法打印。\n张三"))
    assert (code, reply) == (250, "2.0.0 OK: ticket INC-2026-000999 created")
    [mail] = handler.mails
    assert mail.ticket_number is None
    assert mail.subject == "打印机无法连接网络"
    assert (mail.from_address, mail.from_name, mail.envelope_from) == (STAFF, "张三", STAFF)
    assert mail.text == "三楼打印机从今早开始无法打印。\n张三"
    assert mail.recipients == (DESK,)
    assert not mail.spoof_suspect and mail.sender_known and not mail.auto_submitted
    assert mail.message_id.endswith("@agency.example.cn>")
    assert handler.threads[0].startswith("mail-gateway")  # not the event loop's thread


def test_reply_carries_ticket_number_and_quoted_tail_is_stripped(
    start_gateway: Callable[..., MailGateway],
) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler)
    body = (
        "已恢复，谢谢。\n"
        "\n"
        "在 2026年3月1日 周日 10:05，生态云运维平台 <ops@ecocloud.example.cn> 写道：\n"
        "> 您好，工单 INC-2026-000123 已受理。\n"
        "> 处理人：王五\n"
    )
    with connect(gateway) as client:
        client.sendmail(STAFF, [DESK], compose("Re: [INC-2026-000123] 网络中断", body))
    [mail] = handler.mails
    assert mail.ticket_number == "INC-2026-000123"
    assert mail.text == "已恢复，谢谢。"
    assert "写道" in mail.full_text and "处理人" in mail.full_text


def test_handler_rejection_becomes_550(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler(outcome=lambda m: Rejected(550, "5.7.1 unknown sender"))
    gateway = start_gateway(handler)
    with connect(gateway) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail(STAFF, [DESK], compose("问题", "内容"))
    assert info.value.smtp_code == 550 and b"unknown sender" in info.value.smtp_error


def test_unknown_sender_policy(start_gateway: Callable[..., MailGateway]) -> None:
    strict = RecordingHandler(known={STAFF})
    gateway = start_gateway(strict)
    with connect(gateway) as client:
        code, reply = transact(client, compose("求助", "内容", sender="stranger@mail.example"),
                               mail_from="stranger@mail.example")
        assert code == 550 and "not known" in reply
        assert transact(client, compose("求助", "内容"))[0] == 250  # known sender, same session
    assert [m.from_address for m in strict.mails] == [STAFF]

    lenient = RecordingHandler(outcome=lambda m: Queued("unknown sender"), known=set())
    gateway = start_gateway(lenient, unknown_senders="queue")
    with connect(gateway) as client:
        code, reply = transact(client, compose("求助", "内容", sender="stranger@mail.example"),
                               mail_from="stranger@mail.example")
    assert (code, reply) == (250, "2.0.0 OK: queued for review")
    assert lenient.mails[0].sender_known is False


def test_recipients_outside_the_accepted_domains_are_refused(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler)
    with connect(gateway) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.sendmail(STAFF, ["someone@other.example"], compose("x", "y", to="someone@other.example"))
        assert info.value.recipients["someone@other.example"][0] == 550
        refused = client.sendmail(STAFF, ["someone@other.example", "ITSM@agency.example.cn"], compose("x", "y"))
        assert list(refused) == ["someone@other.example"]
    assert handler.mails[0].recipients == ("itsm@agency.example.cn",)


def test_oversize_message_gets_552_and_never_reaches_the_handler(
    start_gateway: Callable[..., MailGateway],
) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler, max_message_bytes=64 * 1024)
    raw = compose("大附件", "见附件", attachments=(("big.pdf", "application/pdf", b"%PDF" * 30_000),))
    assert len(raw) > 64 * 1024
    with connect(gateway) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:  # smtplib announces SIZE: refused at MAIL FROM
            client.sendmail(STAFF, [DESK], raw)
        assert info.value.smtp_code == 552
        code, _ = transact(client, raw)  # no SIZE: counted while DATA streams
        assert code == 552
        assert transact(client, compose("小邮件", "正常"))[0] == 250
    assert [m.subject for m in handler.mails] == ["小邮件"]


def test_spoofed_envelope_is_flagged(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler)
    with connect(gateway) as client:
        client.sendmail("attacker@evil.example", [DESK], compose("请重置密码", "我是张三"))
        client.sendmail(STAFF.upper(), [DESK], compose("正常邮件", "内容"))
    assert [m.spoof_suspect for m in handler.mails] == [True, False]
    assert handler.mails[0].envelope_from == "attacker@evil.example"


def test_handler_failure_gives_451_and_the_retry_succeeds(
    start_gateway: Callable[..., MailGateway], caplog: pytest.LogCaptureFixture,
) -> None:
    handler = RecordingHandler()
    handler.failures_left = 1
    gateway = start_gateway(handler)
    raw = compose("存储告警", "磁盘使用率 95%")
    with connect(gateway) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail(STAFF, [DESK], raw)
    assert info.value.smtp_code == 451
    assert "database is down" in caplog.text
    assert handler.mails == []
    with connect(gateway) as client:  # the sending server retries later
        client.sendmail(STAFF, [DESK], raw)
    [mail] = handler.mails
    assert mail.subject == "存储告警" and len(handler.threads) == 2


def test_attachments_are_delivered_and_dangerous_ones_dropped(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler, max_attachment_bytes=10_000)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    raw = compose("截图", "见附件", attachments=(
        ("故障截图.png", "image/png", png),
        ("巡检报告.docx", "application/octet-stream", b"PK\x03\x04docx"),
        ("tool.exe", "application/octet-stream", b"MZ\x90\x00"),
        ("huge.pdf", "application/pdf", b"%PDF" * 5000),
    ))
    with connect(gateway) as client:
        client.sendmail(STAFF, [DESK], raw)
    [mail] = handler.mails
    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("故障截图.png", "image/png", png), ("巡检报告.docx", "application/octet-stream", b"PK\x03\x04docx"),
    ]
    assert [(d.filename, d.reason) for d in mail.dropped_attachments] == [
        ("tool.exe", "file type .exe is not allowed"), ("huge.pdf", "larger than 10000 bytes"),
    ]
    assert mail.text == "见附件"


def test_malformed_message_is_rejected_and_the_server_keeps_serving(
    start_gateway: Callable[..., MailGateway],
) -> None:
    handler = RecordingHandler()
    gateway = start_gateway(handler)
    no_boundary = (f"From: {STAFF}\r\nTo: {DESK}\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/mixed\r\n\r\n"
                   "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n").encode()
    no_from = f"To: {DESK}\r\nSubject: anonymous\r\n\r\nhello\r\n".encode()
    with connect(gateway) as client:
        code, reply = transact(client, no_boundary)
        assert code == 554 and reply.startswith("5.6.0 Malformed message: broken MIME structure")
        code, reply = transact(client, no_from)
        assert code == 554 and "no From header" in reply
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(STAFF, [DESK], b"\x00\xff garbage without any header\r\n")
        assert info.value.smtp_code == 554
        assert transact(client, compose("正常", "同一会话继续"))[0] == 250
    with connect(gateway) as client:
        assert transact(client, compose("正常2", "新连接"))[0] == 250
    assert [m.subject for m in handler.mails] == ["正常", "正常2"]


def test_gateway_lifecycle(start_gateway: Callable[..., MailGateway]) -> None:
    handler = RecordingHandler()
    busy = start_gateway(handler)
    other = MailGateway(GatewaySettings(accepted_recipients=("servicedesk.example.cn",), port=busy.port), handler)
    with pytest.raises(AdapterError, match=rf"127\.0\.0\.1:{busy.port}"):
        other.start()
    assert not other.running

    with MailGateway(GatewaySettings(accepted_recipients=("servicedesk.example.cn",), port=0), handler) as gw:
        port = gw.port
        with connect(gw) as client:
            assert client.noop()[0] == 250
    assert not gw.running
    with pytest.raises(OSError), socket.create_connection((LOCAL, port), timeout=1):
        pass
    with pytest.raises(ConfigError, match="at least one"):
        GatewaySettings(accepted_recipients=())


# Parsing details (no server) ----------------------------------------------------------------------------
def test_ticket_numbers() -> None:
    assert find_ticket_number("回复：工单inc-2026-000123网络中断") == "INC-2026-000123"
    assert find_ticket_number("【CHG-2025-004567】变更") == "CHG-2025-004567"
    assert find_ticket_number("XINC-2026-000123") is None
    assert find_ticket_number("INC-2026-0001234") is None
    assert find_ticket_number("REQ-26-000123") is None


def test_quote_markers() -> None:
    outlook = "好的，明天处理。\n\n-----Original Message-----\nFrom: desk\nSent: Monday\n\n原文"
    assert strip_quoted_reply(outlook) == "好的，明天处理。"
    qq = "收到\n\n------------------ 原始邮件 ------------------\n发件人: 服务台\n发送时间: 2026年3月1日\n正文"
    assert strip_quoted_reply(qq) == "收到"
    outlook_zh = ("已处理\n\n________________________________\n"
                  "发件人: 服务台 <desk@x.cn>\n发送时间: 2026年3月1日 10:00\n收件人: 张三")
    assert strip_quoted_reply(outlook_zh) == "已处理"
    gmail = "Done.\n\nOn Sun, Mar 1, 2026 at 10:05 AM Service Desk <desk@x.cn>\nwrote:\n> original"
    assert strip_quoted_reply(gmail) == "Done."
    inline = "> 问题一？\n答复一\n> 问题二？\n答复二"
    assert strip_quoted_reply(inline) == "答复一\n答复二"
    only_quote = "-----Original Message-----\nFrom: a\nSent: b\n转发的内容"
    assert strip_quoted_reply(only_quote) == only_quote  # nothing of its own: keep everything


def test_html_only_gbk_and_forward() -> None:
    html = ("<html><head><style>p{}</style></head><body><p>核心交换机&nbsp;告警</p><div>请尽快处理<br>谢谢</div>"
            "<blockquote><p>原来的邮件</p></blockquote><script>x()</script></body></html>")
    assert html_to_text(html) == "核心交换机 告警\n请尽快处理\n谢谢\n> 原来的邮件"
    raw = (
        b"From: =?gb2312?b?1cXI/Q==?= <Zhang.San@Agency.example.cn>\r\n"
        b"Subject: \xcd\xf8\xc2\xe7\xd6\xd0\xb6\xcf\r\n"  # raw 8-bit GBK: 网络中断
        b"Date: Sun, 01 Mar 2026 10:05:00 +0800\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"Content-Type: text/html; charset=gb2312\r\n\r\n"
        b"<p>\xcd\xf8\xc2\xe7</p>\r\n"
    )
    mail = parse_message(raw, "<Zhang.San@agency.example.cn>")
    assert (mail.from_name, mail.from_address, mail.subject) == ("张三", "zhang.san@agency.example.cn", "网络中断")
    assert mail.text == "网络" and not mail.spoof_suspect and mail.auto_submitted
    assert mail.date == dt.datetime(2026, 3, 1, 2, 5, tzinfo=dt.UTC)
    assert mail.message_id.endswith("@ecocloud-ops.invalid>")
    assert parse_message(raw, "<Zhang.San@agency.example.cn>").message_id == mail.message_id  # stable on retry

    forwarded = "请看\n\n-----Original Message-----\nFrom: a\nSent: b\n告警内容"
    fwd = parse_message(compose("转发：系统告警", forwarded), STAFF)
    assert "告警内容" in fwd.text  # forwards keep the forwarded text

    with pytest.raises(ValueError, match="empty"):
        parse_message(b"", STAFF)
