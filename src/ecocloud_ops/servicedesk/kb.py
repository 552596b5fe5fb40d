"""The knowledge base: articles the desk writes and everyone with the service desk reads.

Who sees what:

* ``site_id`` NULL is a national article, read everywhere. Otherwise the article belongs to a site and
  is read by the users whose scope contains the site and by the users at or below it (a provincial
  article helps its cities and counties); national roles read everything.
* Readers (``servicedesk.use``) see published articles only; writers (``servicedesk.work``) see drafts too.
* Writers create and change the articles of sites inside their own scope; national articles need a
  national role (a provincial or vendor writer cannot change what the whole country reads).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, case, false, func, literal, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..audit.service import Actor, AuditLog
from ..auth.models import User
from ..auth.permissions import has_permission
from ..auth.scope import Scope
from ..db import Base, UTCDateTime, utcnow
from ..errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from ..sites.models import Site
from .models import Category

WRITE_PERMISSION = "servicedesk.work"
MAX_BODY = 100_000
MAX_TAGS = 20
MAX_TAG_LENGTH = 32
#: Search words beyond this many are ignored (each adds three LIKE terms).
MAX_SEARCH_WORDS = 8


class Article(Base):
    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    #: Markdown-ish text, stored as written; the console renders it escaped.
    body: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(24), default=Category.OTHER, index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The tags lower-cased, one per line, for LIKE searches (JSON text escapes non-ASCII on some backends).
    tags_text: Mapped[str] = mapped_column(Text, default="")
    #: NULL: a national article; else the site whose subtree (and whose ancestors' users) read it.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    views: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Optimistic lock: a stale edit is refused (409), never silently overwrites another writer's change.
    version: Mapped[int] = mapped_column(Integer, default=1)

    site: Mapped[Site | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def clean_tags(tags: Any) -> list[str]:
    """Strip, drop empties and case-insensitive duplicates; at most 20 tags of 32 characters."""
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _fail("tags", "a list of strings")
    out: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        tag = " ".join(raw.split())
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise _fail("tags", f"each tag at most {MAX_TAG_LENGTH} characters")
        if tag.lower() not in seen:
            seen.add(tag.lower())
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise _fail("tags", f"at most {MAX_TAGS} tags")
    return out


def is_writer(user: User | None) -> bool:
    return user is not None and has_permission(user.role, WRITE_PERMISSION)


class KnowledgeBase:
    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    # Visibility ----------------------------------------------------------------------------
    def visible(self, user: User | None, scope: Scope) -> Any:
        """WHERE clause over ``kb_articles``: the caller's sites (subtree and ancestors), national
        articles, and for readers published articles only."""
        if scope.national:
            where: Any = Article.id.isnot(None)
        else:
            where = or_(Article.site_id.is_(None), Article.site_id.in_(select(Site.id).where(or_(
                scope.site_clause(), literal(scope.root_path).startswith(Site.path)))))
        if not is_writer(user):
            where = where & Article.published.is_(True)
        return where

    def get(self, article_id: int | str, user: User | None, scope: Scope) -> Article:
        """An article the caller may read; NotFound otherwise (no hint that it exists)."""
        text = str(article_id).strip()
        if not text.isdigit() or len(text) > 18:
            raise NotFound(f"no article {article_id}")
        art = self.session.execute(select(Article).where(Article.id == int(text), self.visible(user, scope))
                                   ).scalar_one_or_none()
        if art is None:
            raise NotFound(f"no article {article_id}")
        return art

    def search(self, user: User | None, scope: Scope, *, query: str | None = None, category: str | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[Article], int]:
        """Articles containing every word of ``query`` (case-insensitive) in the title, the body or a
        tag; title hits rank first, then tag hits, then body hits; newest change first within a rank."""
        q = select(Article).where(self.visible(user, scope))
        if category:
            q = q.where(Article.category == category)
        words = [w.lower() for w in (query or "").split()][:MAX_SEARCH_WORDS]
        rank: Any = literal(0)
        for w in words:
            in_title = Article.title.icontains(w, autoescape=True)
            in_tags = Article.tags_text.contains(w, autoescape=True)
            in_body = Article.body.icontains(w, autoescape=True)
            q = q.where(or_(in_title, in_tags, in_body))
            rank = rank + case((in_title, 100), else_=0) + case((in_tags, 10), else_=0) + case((in_body, 1), else_=0)
        total = self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = self.session.execute(q.order_by(rank.desc(), Article.updated_at.desc(), Article.id.desc())
                                    .limit(limit).offset(offset)).scalars()
        return list(rows), total

    # Writes --------------------------------------------------------------------------------
    def _require_write(self, user: User | None, scope: Scope, site: Site | None) -> None:
        if not is_writer(user):
            raise PermissionDenied("only the service desk and the teams working tickets write the knowledge base")
        if site is None and not scope.national:
            raise PermissionDenied("national articles are written by national roles; choose a site in your scope")
        if site is not None and not scope.contains_path(site.path):
            raise PermissionDenied(f"the article belongs to site {site.code}, outside your scope")

    def _site(self, code: str | None, scope: Scope) -> Site | None:
        if code is None or code == "":
            return None
        site = self.session.execute(select(Site).where(Site.code == code, scope.site_clause())).scalar()
        if site is None:
            raise NotFound(f"no site {code}")
        return site

    @staticmethod
    def _check(title: str | None = None, body: str | None = None, category: str | None = None) -> None:
        if title is not None and not 1 <= len(title) <= 200:
            raise _fail("title", "1 to 200 characters")
        if body is not None and len(body) > MAX_BODY:
            raise _fail("body", f"at most {MAX_BODY:,} characters")
        if category is not None and category not in {c.value for c in Category}:
            raise _fail("category", f"one of {', '.join(c.value for c in Category)}")

    def create(self, actor: Actor, user: User | None, scope: Scope, *, title: str, body: str = "",
               category: str = Category.OTHER, tags: list[str] | None = None, site_code: str | None = None,
               published: bool = False, now: dt.datetime | None = None) -> Article:
        title = (title or "").strip()
        self._check(title, body or "", category)
        tag_list = clean_tags(tags or [])
        site = self._site(site_code, scope)
        self._require_write(user, scope, site)
        now = now or utcnow()
        art = Article(title=title, body=body or "", category=category, tags=tag_list,
                      tags_text="\n".join(t.lower() for t in tag_list), site_id=site.id if site else None,
                      author=actor.username, updated_by=actor.username, created_at=now, updated_at=now,
                      published=published, published_at=now if published else None, views=0)
        self.session.add(art)
        self.session.flush()
        art.site = site
        self.audit.record(actor, "kb.create", target_type="kb_article", target_id=str(art.id),
                          after={"title": title, "category": category, "tags": tag_list,
                                 "site": site.code if site else None, "published": published})
        return art

    def update(self, actor: Actor, user: User | None, scope: Scope, article: Article, *, version: int | None = None,
               now: dt.datetime | None = None, **changes: Any) -> Article:
        """Change title, body, category, tags, site (``site_code``) or ``published``; audited with the
        old and new values (the body as its length: it can be long)."""
        allowed = {"title", "body", "category", "tags", "site_code", "published"}
        unknown = set(changes) - allowed
        if unknown:
            raise _fail(sorted(unknown)[0], "cannot be changed")
        self._require_write(user, scope, article.site)
        if version is not None and version != article.version:
            raise Conflict(f"article {article.id} was changed by someone else meanwhile; reload and try again")
        if "title" in changes:
            changes["title"] = (changes["title"] or "").strip()
        self._check(changes.get("title"), changes.get("body"), changes.get("category"))
        now = now or utcnow()
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if "tags" in changes:
            tags = clean_tags(changes.pop("tags"))
            if tags != article.tags:
                before["tags"], after["tags"] = article.tags, tags
                article.tags = tags
                article.tags_text = "\n".join(t.lower() for t in tags)
        if "site_code" in changes:
            site = self._site(changes.pop("site_code"), scope)
            self._require_write(user, scope, site)
            if (site.id if site else None) != article.site_id:
                before["site"] = article.site.code if article.site else None
                after["site"] = site.code if site else None
                article.site_id = site.id if site else None
                article.site = site
        published = changes.pop("published", None)
        for field, value in changes.items():
            old = getattr(article, field)
            if old != value:
                setattr(article, field, value)
                if field == "body":
                    before["body_length"], after["body_length"] = len(old), len(value)
                else:
                    before[field], after[field] = old, value
        if after:
            article.updated_at = now
            article.updated_by = actor.username
            self.audit.record(actor, "kb.update", target_type="kb_article", target_id=str(article.id),
                              before=before, after=after)
        if published is not None:
            self.publish(actor, user, scope, article, published, now=now)
        return article

    def publish(self, actor: Actor, user: User | None, scope: Scope, article: Article, published: bool = True, *,
                now: dt.datetime | None = None) -> Article:
        """Publish (or withdraw) an article; publishing twice changes nothing and audits nothing."""
        self._require_write(user, scope, article.site)
        if article.published == published:
            return article
        now = now or utcnow()
        article.published = published
        article.published_at = now if published else None
        article.updated_at = now
        article.updated_by = actor.username
        self.audit.record(actor, "kb.publish" if published else "kb.withdraw", target_type="kb_article",
                          target_id=str(article.id), before={"published": not published},
                          after={"published": published})
        return article

    def record_view(self, article: Article) -> None:
        """Count a read with one UPDATE (no lost increments, no version bump: a read is not an edit)."""
        self.session.execute(update(Article).where(Article.id == article.id).values(views=Article.views + 1)
                             .execution_options(synchronize_session=False))
        self.session.expire(article, ["views"])


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def article_dict(a: Article, *, body: bool = True) -> dict[str, Any]:
    out = {"id": a.id, "title": a.title, "category": a.category, "tags": list(a.tags or []),
           "site": a.site.code if a.site else None, "author": a.author, "updated_by": a.updated_by,
           "created_at": _iso(a.created_at), "updated_at": _iso(a.updated_at), "published": a.published,
           "published_at": _iso(a.published_at), "views": a.views, "version": a.version}
    if body:
        out["body"] = a.body
    return out
