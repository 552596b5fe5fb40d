"""Ticket notifications over real SMTP: an aiosmtpd server on loopback receives what the outbox sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.config import load_settings
from ecocloud_ops.servicedesk.notify import deliver
from ecocloud_ops.servicedesk.teams import Notification
from tests.conftest import TEST_ACTOR, Account, csrf_from


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []
        self.refuse_all = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse_all:
            return "451 4.3.0 try later"
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)  # type: ignore[arg-type]
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def mailing(container: Container, port: int) -> Container:
    return Container(load_settings(environ={}, instance_dir=container.settings.instance_dir,
                                   database_url=container.settings.effective_database_url, smtp_host="127.0.0.1",
                                   smtp_port=port, smtp_security="none", smtp_sender="servicedesk@hbj.gov.cn",
                                   public_url="https://ops.example.gov.cn"))


def test_requester_and_assignee_hear_of_each_step(app: object, container: Container,
                                                   make_user: Callable[..., Account],
                                                   smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    make_user("hb.requester", "provincial_staff", "130100")
    make_user("hb.engineer", "desk_agent", "000000")
    with container.unit_of_work() as svc:
        svc.auth.by_username("hb.requester").email = "req@hbj.gov.cn"  # type: ignore[union-attr]
        svc.auth.by_username("hb.engineer").email = "eng@hbj.gov.cn"  # type: ignore[union-attr]
    c = mailing(container, port)
    try:
        with c.unit_of_work() as svc:
            requester = svc.auth.by_username("hb.requester")
            # Thursday 10:00 Asia/Shanghai: within working hours (no out-of-hours call-out).
            t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="视频会议卡顿",
                                   site_code="130100", requester=requester,
                                   now=dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC))
            number = t.number
        assert deliver(c)["sent"] == 1
        rcpt, msg = inbox.messages[-1]
        assert rcpt == ["req@hbj.gov.cn"] and number in msg["Subject"] and "已受理" in msg["Subject"]
        assert msg["X-EcoCloud-Ticket"] == number
        assert f"https://ops.example.gov.cn/servicedesk/{number}" in msg.get_content()
        with c.unit_of_work() as svc:
            t = svc.tickets.get(number, None, Scope.everything())
            svc.tickets.assign(TEST_ACTOR, t, team="desk", assignee=svc.auth.by_username("hb.engineer"))
            svc.tickets.comment(TEST_ACTOR, t, "请提供终端型号")
            svc.tickets.comment(TEST_ACTOR, t, "内部记录", kind="worklog")
            svc.tickets.transition(TEST_ACTOR, t, "in_progress")
            svc.tickets.transition(TEST_ACTOR, t, "resolved", now=dt.datetime.now(dt.UTC))
        assert deliver(c)["sent"] == 3  # assigned, the public comment, resolved (no mail for the work log)
        got = {m["Subject"].split(" — ")[-1]: (r, m) for r, m in inbox.messages[1:]}
        assert got["已分派给您"][0] == ["eng@hbj.gov.cn"]
        assert sorted(got["新的回复"][0]) == ["eng@hbj.gov.cn", "req@hbj.gov.cn"]
        assert "请提供终端型号" in got["新的回复"][1].get_content()
        resolved = got["已解决"][1].get_content()
        assert "https://ops.example.gov.cn/servicedesk/rate/" in resolved
        assert all("内部记录" not in m.get_content() for _r, m in inbox.messages)
        assert deliver(c)["sent"] == 0, "each notification once"
        # The requester rates from the e-mail's link, without logging in; once.
        link = next(w for w in resolved.split() if "/servicedesk/rate/" in w).split("https://ops.example.gov.cn")[1]
        client = app.test_client()  # type: ignore[attr-defined]
        page = client.get(link)
        assert page.status_code == 200 and number in page.get_data(as_text=True)
        token = csrf_from(client, link)
        done = client.post(link, data={"csrf_token": token, "score": "5", "comment": "响应很快"})
        assert done.status_code == 200 and 'id="rated"' in done.get_data(as_text=True)
        assert client.post(link, data={"csrf_token": token, "score": "1"}).status_code == 409
        assert client.get(link[:-3] + "xyz").status_code in (400, 403, 404)
        with c.unit_of_work() as svc:
            from ecocloud_ops.servicedesk.ratings import RatingService

            r = RatingService(svc.session, svc.audit).get(svc.tickets.get(number, None, Scope.everything()))
            assert r is not None and r.score == 5 and r.comment == "响应很快"
    finally:
        c.dispose()


def test_an_smtp_outage_keeps_notifications_queued(container: Container, make_user: Callable[..., Account],
                                                   smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    make_user("gd.requester", "provincial_staff", "440100")
    with container.unit_of_work() as svc:
        svc.auth.by_username("gd.requester").email = "gd@gdhbj.gov.cn"  # type: ignore[union-attr]
    c = mailing(container, port)
    try:
        with c.unit_of_work() as svc:
            svc.tickets.create(TEST_ACTOR, Scope.everything(), type="service_request", title="开通账号",
                               site_code="440100", requester=svc.auth.by_username("gd.requester"),
                               now=dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC))
        inbox.refuse_all = True
        assert deliver(c)["failed"] == 1
        with c.unit_of_work() as svc:
            assert svc.session.execute(select(Notification.sent_at)).scalar_one() is None
        inbox.refuse_all = False
        assert deliver(c)["sent"] == 1 and len(inbox.messages) == 1
    finally:
        c.dispose()
