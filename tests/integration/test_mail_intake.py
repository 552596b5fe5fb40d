"""E-mail intake end to end: real SMTP sessions (smtplib) into the platform's mail gateway, tickets and
comments in the database."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.config import load_settings
from ecocloud_ops.servicedesk.mail_intake import TicketMailHandler, gateway_settings
from ecocloud_ops.servicedesk.mailgateway import MailGateway
from ecocloud_ops.servicedesk.models import Ticket, TicketEvent
from tests.conftest import TEST_ACTOR, Account


def mail(sender: str, subject: str, body: str, *, msg_id: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "servicedesk@hbj.gov.cn"
    m["Subject"] = subject
    if msg_id:
        m["Message-ID"] = msg_id
    m.set_content(body)
    return m


def gateway_for(container: Container, unknown: str) -> MailGateway:
    c = Container(load_settings(environ={}, instance_dir=container.settings.instance_dir,
                                database_url=container.settings.effective_database_url,
                                mail_accepted_recipients=["hbj.gov.cn"], mail_unknown_senders=unknown,
                                mail_gateway_port=0, mail_max_message_bytes=64 * 1024))
    return MailGateway(gateway_settings(c), TicketMailHandler(c))


@pytest.fixture
def filer(container: Container, make_user: Callable[..., Account]) -> Account:
    acc = make_user("hb.mailer", "provincial_staff", "130100")
    with container.unit_of_work() as svc:
        svc.auth.by_username("hb.mailer").email = "li.ming@hbj.gov.cn"  # type: ignore[union-attr]
    return acc


@pytest.fixture
def gateway(container: Container, filer: Account) -> Iterator[MailGateway]:
    gw = gateway_for(container, "reject")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def send(gw: MailGateway, msg: EmailMessage, envelope_from: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as s:
        s.send_message(msg, from_addr=envelope_from or msg["From"])


def tickets(container: Container) -> list[Ticket]:
    with container.unit_of_work() as svc:
        rows = list(svc.session.execute(select(Ticket).order_by(Ticket.id)).scalars())
        svc.session.expunge_all()
        return rows


def test_new_ticket_then_reply_becomes_a_comment(container: Container, gateway: MailGateway) -> None:
    send(gateway, mail("李明 <li.ming@hbj.gov.cn>", "县局专网中断", "石家庄市局到省厅的专线从 9:05 起中断。",
                       msg_id="<a1@hbj.gov.cn>"))
    [t] = tickets(container)
    assert t.title == "县局专网中断" and t.source == "email"
    with container.unit_of_work() as svc:
        ticket = svc.tickets.get(t.number, None, Scope.everything())
        assert ticket.requester is not None and ticket.requester.username == "hb.mailer"
        assert ticket.site.code == "130100"
    reply = mail("li.ming@hbj.gov.cn", f"Re: [{t.number}] 县局专网中断",
                 "已恢复，谢谢。\n\n在 2026年11月29日 写道：\n> 石家庄市局到省厅的专线从 9:05 起中断。",
                 msg_id="<a2@hbj.gov.cn>")
    send(gateway, reply)
    send(gateway, reply)  # the sender's server retries: still one comment
    assert len(tickets(container)) == 1
    with container.unit_of_work() as svc:
        comments = [e.body for e in svc.session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id == t.id, TicketEvent.kind == "comment")).scalars()]
    assert comments == ["已恢复，谢谢。"], "the quoted tail is stripped, the retry is not a second comment"


def test_unknown_and_spoofed_senders_are_rejected(container: Container, gateway: MailGateway) -> None:
    with pytest.raises(smtplib.SMTPException) as err:
        send(gateway, mail("stranger@example.com", "求助", "你好"))
    assert "550" in str(err.value)
    with pytest.raises(smtplib.SMTPException) as err:
        send(gateway, mail("li.ming@hbj.gov.cn", "冒名", "伪造"), envelope_from="evil@example.com")
    assert "550" in str(err.value)
    with pytest.raises(smtplib.SMTPException) as err:
        send(gateway, mail("li.ming@hbj.gov.cn", "大附件", "x" * 200_000))
    assert "552" in str(err.value)
    # Another province's ticket by number: refused, nothing written.
    with container.unit_of_work() as svc:
        gd = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="广东", site_code="440100")
        number = gd.number
    with pytest.raises(smtplib.SMTPException) as err:
        send(gateway, mail("li.ming@hbj.gov.cn", f"Re: {number}", "窥探"))
    assert "550" in str(err.value)
    assert [t.title for t in tickets(container)] == ["广东"]


def test_unknown_senders_can_be_queued_for_an_agent(container: Container, filer: Account) -> None:
    gw = gateway_for(container, "queue")
    with gw:
        send(gw, mail("王五 <wang@county.example.cn>", "申请开通账号", "请开通统一门户账号"))
    [t] = tickets(container)
    assert t.requester_id is None and "wang@county.example.cn" in t.requester_name
    assert t.site_id is not None and t.status == "new" and "待服务台核实" in t.description
