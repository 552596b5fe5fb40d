"""E-mail intake: the mail gateway's handler turns a message into a ticket or a comment."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..audit.service import Actor
from ..auth.models import User
from ..auth.scope import Scope
from ..db import Base, UTCDateTime, utcnow
from ..errors import EcoCloudError, NotFound
from .mailgateway import Accepted, GatewaySettings, IncomingMail, Outcome, Queued, Rejected

if TYPE_CHECKING:
    from ..bootstrap import Container

log = logging.getLogger(__name__)
UNKNOWN_SITE = "000000"


class InboundMail(Base):
    """Messages already turned into tickets or comments, by Message-ID: a retried delivery (the
    sender's server resends after a timeout) never makes a second ticket."""

    __tablename__ = "inbound_mails"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ticket_number: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def gateway_settings(container: Container, *, host: str | None = None, port: int | None = None) -> GatewaySettings:
    s = container.settings
    return GatewaySettings(accepted_recipients=tuple(s.mail_accepted_recipients), host=host or s.mail_gateway_host,
                           port=s.mail_gateway_port if port is None else port,
                           max_message_bytes=s.mail_max_message_bytes, unknown_senders=s.mail_unknown_senders)


class TicketMailHandler:
    """Known sender: a new ticket at their site, or a comment on their ticket when the subject carries its
    number. Unknown sender (or a From that does not match the envelope): the gateway rejects it, or it is
    queued as a new ticket from the ministry's desk for an agent to sort out."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def _user(self, session: Session, address: str) -> User | None:
        return session.execute(select(User).where(
            func.lower(User.email) == address.lower(), User.is_active.is_(True))).scalar()

    def is_known_sender(self, address: str) -> bool:
        with self.container.unit_of_work() as svc:
            return bool(address) and self._user(svc.session, address) is not None

    def handle(self, mail: IncomingMail) -> Outcome:
        with self.container.unit_of_work() as svc:
            seen = svc.session.get(InboundMail, mail.message_id)
            if seen is not None:
                return Accepted(seen.ticket_number or "", False)
            if mail.auto_submitted:
                svc.session.add(InboundMail(message_id=mail.message_id, outcome="ignored", sender=mail.from_address))
                return Queued("automatic reply ignored")
            user = None if mail.spoof_suspect else self._user(svc.session, mail.from_address)
            if user is None and self.container.settings.mail_unknown_senders == "reject":
                return Rejected(550, "sender is not a registered user of the service desk")
            text = mail.text.strip() or mail.subject
            if user is not None:
                actor = Actor(user.username, role=user.role, channel="email", user_id=user.id)
                scope = Scope.for_user(user.role, user.site.path)
                if mail.ticket_number:
                    try:
                        ticket = svc.tickets.get(mail.ticket_number, user, scope)
                    except NotFound:
                        return Rejected(550, f"no ticket {mail.ticket_number} for this sender")
                    svc.tickets.comment(actor, ticket, text)
                    outcome: Outcome = Accepted(ticket.number, False)
                else:
                    ticket = svc.tickets.create(actor, scope, type="incident",
                                                title=(mail.subject or "（无主题）")[:200], description=text,
                                                site_code=user.site.code, requester=user, source="email")
                    outcome = Accepted(ticket.number, True)
            else:
                actor = Actor("mail-gateway", channel="email")
                who = f"{mail.from_name} <{mail.from_address}>" if mail.from_name else mail.from_address
                note = "（发件人未登记或发件地址与信封不符，待服务台核实）"
                try:
                    ticket = svc.tickets.create(actor, Scope.everything(), type="incident",
                                                title=(mail.subject or "（无主题）")[:200],
                                                description=f"{note}\n{text}", site_code=UNKNOWN_SITE,
                                                requester_name=who[:200], source="email")
                except EcoCloudError as exc:
                    log.warning("queued mail from %s not filed: %s", mail.from_address, exc.message)
                    return Rejected(550, "message could not be filed")
                outcome = Queued(f"queued for an agent as {ticket.number}")
            svc.session.add(InboundMail(message_id=mail.message_id, ticket_number=ticket.number,
                                        outcome="created" if isinstance(outcome, Accepted) and outcome.created
                                        else "comment" if isinstance(outcome, Accepted) else "queued",
                                        sender=mail.from_address[:255]))
            return outcome
