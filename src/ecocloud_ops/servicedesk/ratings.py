"""Resolution ratings: the requester rates how a ticket was resolved (1-5 and a comment), in the
console or from a signed link in the "resolved" e-mail.

Rules (chosen and documented here):

* only the requester rates (in the console/API: the logged-in requester; from the e-mail: the holder of
  a valid rating token for that ticket and requester), and only once the ticket is resolved or closed;
* a ticket has one rating. A second one is refused (409) -- unless the ticket was reopened and resolved
  again after the first rating: then the new rating replaces the old one (the audit entry keeps both).
* rating tokens are signed with the instance's secret key (itsdangerous) and expire after 30 days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..audit.service import Actor, AuditLog
from ..auth.models import User
from ..db import Base, UTCDateTime, utcnow
from ..errors import Conflict, EcoCloudError, PermissionDenied, ValidationFailed
from .models import Ticket, TicketEvent, TicketStatus

#: How long the link in the "resolved" e-mail stays valid.
RATING_TOKEN_MAX_AGE = 30 * 24 * 3600
RATING_TOKEN_SALT = "ecocloud-ops.ticket-rating"
MAX_COMMENT = 2000


class RatingTokenInvalid(EcoCloudError):
    status = 400
    code = "rating_token_invalid"


class RatingTokenExpired(RatingTokenInvalid):
    status = 410
    code = "rating_token_expired"


class Rating(Base):
    __tablename__ = "ticket_ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    rated_by: Mapped[str] = mapped_column(String(64))
    rated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: console, api or email (the signed link).
    channel: Mapped[str] = mapped_column(String(16), default="console")


@dataclass(frozen=True)
class RatingClaim:
    """What a valid rating token says: this ticket, rated by this requester."""

    ticket_id: int
    number: str
    requester_id: int | None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=RATING_TOKEN_SALT)


def rating_token(ticket: Ticket, secret: str) -> str:
    """A URL-safe signed token for the rating link in the "resolved" e-mail (valid 30 days)."""
    return str(_serializer(secret).dumps({"t": ticket.id, "n": ticket.number, "r": ticket.requester_id}))


def verify_rating_token(token: str, secret: str, *, max_age: int = RATING_TOKEN_MAX_AGE) -> RatingClaim:
    """The claim of a token signed by :func:`rating_token`; RatingTokenExpired after ``max_age`` seconds,
    RatingTokenInvalid if it was altered, signed with another key or is not a rating token."""
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise RatingTokenExpired("this rating link has expired (links are valid for 30 days)") from exc
    except BadSignature as exc:
        raise RatingTokenInvalid("this rating link is not valid") from exc
    if (not isinstance(data, dict) or not isinstance(data.get("t"), int) or not isinstance(data.get("n"), str)
            or not (data.get("r") is None or isinstance(data.get("r"), int))):
        raise RatingTokenInvalid("this rating link is not valid")
    return RatingClaim(ticket_id=data["t"], number=data["n"], requester_id=data["r"])


class RatingService:
    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    def get(self, ticket: Ticket) -> Rating | None:
        return self.session.execute(select(Rating).where(Rating.ticket_id == ticket.id)).scalar_one_or_none()

    def rate(self, actor: Actor, ticket: Ticket, *, score: int, comment: str = "", rater: User | None = None,
             claim: RatingClaim | None = None, now: dt.datetime | None = None) -> Rating:
        """Record the requester's rating. The requester is proven either by ``rater`` (the logged-in
        user, who must be the ticket's requester) or by ``claim`` (a verified rating token for this
        ticket and its current requester). Checked in this order: 422 for a bad score or comment,
        403 for anyone but the requester, 409 when the ticket is not resolved/closed or already rated
        for this resolution."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValidationFailed("score: a whole number from 1 to 5",
                                   details=[{"field": "score", "message": "a whole number from 1 to 5"}])
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise ValidationFailed(f"comment: at most {MAX_COMMENT} characters",
                                   details=[{"field": "comment", "message": f"at most {MAX_COMMENT} characters"}])
        if rater is not None:
            if ticket.requester_id is None or rater.id != ticket.requester_id:
                raise PermissionDenied("only the requester rates the resolution of a ticket")
        elif claim is not None:
            if claim.ticket_id != ticket.id or claim.requester_id != ticket.requester_id:
                raise PermissionDenied("this rating link is for another ticket or requester")
        else:
            raise PermissionDenied("only the requester rates the resolution of a ticket")
        if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            raise Conflict(f"{ticket.number} is {ticket.status}: it can be rated once it is resolved")
        now = now or utcnow()
        existing = self.get(ticket)
        resolved = ticket.resolved_at or ticket.closed_at
        if existing is not None and (resolved is None or existing.rated_at >= resolved):
            raise Conflict(f"{ticket.number} has already been rated for this resolution")
        channel = "email" if rater is None else (actor.channel if actor.channel in ("console", "api") else "console")
        rated_by = (rater.username if rater is not None
                    else ticket.requester.username if ticket.requester is not None else actor.username)[:64]
        before = None
        if existing is None:
            rating = Rating(ticket_id=ticket.id, score=score, comment=comment, rated_by=rated_by, rated_at=now,
                            channel=channel)
            self.session.add(rating)
        else:
            rating = existing
            before = {"score": existing.score, "comment": existing.comment,
                      "rated_at": existing.rated_at.isoformat()}
            rating.score, rating.comment, rating.rated_by, rating.rated_at, rating.channel = (
                score, comment, rated_by, now, channel)
        label = f"评分 {score}/5" + (f"：{comment}" if comment else "")
        self.session.add(TicketEvent(ticket_id=ticket.id, at=now, actor=actor.username, kind="rating",
                                     field="rating", old_value=None if before is None else str(before["score"]),
                                     new_value=str(score), body=label))
        self.session.flush()
        self.audit.record(actor, "ticket.rate", target_type="ticket", target_id=ticket.number, before=before,
                          after={"score": score, "comment": comment, "channel": channel})
        return rating


def rating_dict(r: Rating) -> dict[str, Any]:
    return {"score": r.score, "comment": r.comment, "rated_by": r.rated_by, "rated_at": r.rated_at.isoformat(),
            "channel": r.channel}
