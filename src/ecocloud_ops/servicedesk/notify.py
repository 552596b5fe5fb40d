"""Ticket notifications: decided in the transaction that changed the ticket (an outbox row), delivered by
the worker over SMTP. Subjects carry the ticket number, so a reply comes back as a comment."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .models import Ticket, TicketStatus
from .teams import Notification

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..bootstrap import Container

log = logging.getLogger(__name__)

STATUS_ZH = {"new": "新建", "assigned": "已分派", "in_progress": "处理中", "pending": "挂起（等待反馈）",
             "resolved": "已解决", "closed": "已关闭", "canceled": "已取消"}


def queue(session: Session, kind: str, ticket: Ticket, recipients: list[str], subject: str, body: str) -> None:
    """An outbox row for the recipients (usernames), unless there is no one to tell."""
    names = sorted({r for r in recipients if r})
    if names:
        session.add(Notification(kind=kind[:16], ticket_id=ticket.id, recipients=names,
                                 subject=f"[{ticket.number}] {ticket.title}"[:150] + f" — {subject}"[:50],
                                 body=body))


def _footer(ticket: Ticket, public_url: str) -> str:
    status = STATUS_ZH.get(ticket.status, ticket.status)
    return (f"\n\n工单 {ticket.number} · 优先级 {ticket.priority} · 状态 {status}\n"
            f"查看：{public_url.rstrip('/')}/servicedesk/{ticket.number}\n"
            "直接回复本邮件即可补充说明（请保留主题中的工单号）。")


def on_created(session: Session, ticket: Ticket, public_url: str) -> None:
    if ticket.requester is not None:
        queue(session, "created", ticket, [ticket.requester.username], "已受理",
              f"您好，您的工单已受理：{ticket.title}" + _footer(ticket, public_url))


def on_assigned(session: Session, ticket: Ticket, public_url: str) -> None:
    if ticket.assignee is not None:
        queue(session, "assigned", ticket, [ticket.assignee.username], "已分派给您",
              f"工单已分派给您处理：{ticket.title}\n\n{ticket.description}" + _footer(ticket, public_url))


def on_comment(session: Session, ticket: Ticket, author: str, body: str, public_url: str) -> None:
    people = [u.username for u in (ticket.requester, ticket.assignee) if u is not None and u.username != author]
    queue(session, "comment", ticket, people, "新的回复", f"{author}：\n{body}" + _footer(ticket, public_url))


def on_status(session: Session, ticket: Ticket, public_url: str, rating_url: str | None = None) -> None:
    if ticket.requester is None or ticket.status not in (TicketStatus.PENDING, TicketStatus.RESOLVED):
        return
    if ticket.status == TicketStatus.PENDING:
        text = "工单已挂起，正在等待您或第三方的反馈；反馈后处理时限将继续计时。"
    else:
        text = "工单已解决。如问题仍然存在，可在 7 天内回复本邮件或在平台上重新打开。"
        if rating_url:
            text += f"\n请为本次服务评分（1–5 分）：{rating_url}"
    queue(session, ticket.status, ticket, [ticket.requester.username], STATUS_ZH[ticket.status],
          text + _footer(ticket, public_url))


def deliver(container: Container, limit: int = 200) -> dict[str, Any]:
    """Send what the outbox holds over one SMTP connection; failures stay queued for the next run."""
    from ..adapters.mail import OutgoingMessage, SmtpSettings, send
    from ..auth.models import User
    from .sla_watch import mark_sent, outbox

    s = container.settings
    if not s.smtp_host:
        return {"sent": 0, "skipped": "smtp_host is not set"}
    settings = SmtpSettings(host=s.smtp_host, port=s.smtp_port, security=s.smtp_security,
                            username=s.smtp_username or None, password=s.smtp_password or None, sender=s.smtp_sender)
    with container.unit_of_work() as svc:
        rows = outbox(svc.session, limit)
        if not rows:
            return {"sent": 0}
        names = {n for r in rows for n in r.recipients}
        emails = {u.username: u.email for u in svc.session.execute(select(User).where(User.username.in_(names)))
                  .scalars() if u.email and u.is_active}
        numbers = {t.id: t.number for t in svc.session.execute(select(Ticket).where(
            Ticket.id.in_([r.ticket_id for r in rows if r.ticket_id]))).scalars()}
        batch = [(r.id, OutgoingMessage(to=[emails[n] for n in r.recipients if n in emails], subject=r.subject,
                                        text=r.body, headers={"X-EcoCloud-Ticket": numbers.get(r.ticket_id or 0, "")}))
                 for r in rows]
    to_send = [(rid, m) for rid, m in batch if m.to]
    results = send(settings, [m for _rid, m in to_send]) if to_send else []
    done = {rid for rid, m in batch if not m.to}  # nobody with an address: nothing to retry
    failed = 0
    for (rid, _m), result in zip(to_send, results, strict=True):
        if result.error:
            failed += 1
            log.warning("notification %s not sent: %s", rid, result.error)
        else:
            done.add(rid)
    with container.unit_of_work() as svc:
        mark_sent(svc.session, sorted(done))
    return {"sent": len(done), "failed": failed}
