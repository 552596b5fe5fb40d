"""API routes of the knowledge base, ticket links, ticket attachments and resolution ratings."""

from __future__ import annotations

import io
from typing import Any

from flask import g, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict, Field

from ...errors import ValidationFailed
from ...servicedesk.attachments import MAX_ATTACHMENT_BYTES, AttachmentService, attachment_dict
from ...servicedesk.kb import KnowledgeBase, article_dict
from ...servicedesk.ratings import MAX_COMMENT, RatingService, rating_dict
from ...servicedesk.service import LINK_TYPES
from . import PAGE_QUERY, _page_args, operation, parse_body, services


def knowledge_base() -> KnowledgeBase:
    svc = services()
    return KnowledgeBase(svc.session, svc.audit)


def attachment_store() -> AttachmentService:
    svc = services()
    return AttachmentService(svc.session, svc.audit, g.container.settings.files_dir)


def ratings() -> RatingService:
    svc = services()
    return RatingService(svc.session, svc.audit)


# Knowledge base ------------------------------------------------------------------------------
class ArticleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=100_000, description="Markdown-ish text")
    category: str = Field("other", description="a ticket category")
    tags: list[str] = Field(default_factory=list, max_length=20)
    site: str | None = Field(None, pattern=r"^\d{6}$",
                             description="owning site; null: national (default: national for national roles, "
                                         "the caller's site for the others)")
    published: bool = False


class ArticleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, max_length=100_000)
    category: str | None = None
    tags: list[str] | None = Field(None, max_length=20)
    site: str | None = Field(None, pattern=r"^\d{6}$", description="null: make the article national")
    published: bool | None = None
    version: int | None = Field(None, description="the version read; a stale one is refused (409)")


@operation("/kb/articles", "GET", "Knowledge-base articles the caller may read (title hits first)",
           "servicedesk.use", query=[("q", "string", "words in the title, body or tags"),
                                     ("category", "string", "a ticket category"), *PAGE_QUERY])
def list_articles() -> Any:
    limit, offset = _page_args()
    rows, total = knowledge_base().search(g.user, g.scope, query=(request.args.get("q") or "").strip() or None,
                                          category=request.args.get("category") or None, limit=limit, offset=offset)
    return jsonify({"total": total, "items": [article_dict(a, body=False) for a in rows]})


@operation("/kb/articles", "POST", "Write a knowledge-base article", "servicedesk.work", body=ArticleCreate)
def create_article() -> Any:
    body = parse_body(ArticleCreate)
    site = body.site if "site" in body.model_fields_set else (None if g.scope.national else g.user.site.code)
    art = knowledge_base().create(g.actor, g.user, g.scope, title=body.title, body=body.body,
                                  category=body.category, tags=body.tags, site_code=site, published=body.published)
    return jsonify(article_dict(art)), 201


@operation("/kb/articles/<int:article_id>", "GET", "One article (counts a view)", "servicedesk.use")
def get_article(article_id: int) -> Any:
    kb = knowledge_base()
    art = kb.get(article_id, g.user, g.scope)
    kb.record_view(art)
    return jsonify(article_dict(art))


@operation("/kb/articles/<int:article_id>", "PATCH", "Change or publish an article (within the writer's scope)",
           "servicedesk.work", body=ArticleUpdate)
def update_article(article_id: int) -> Any:
    body = parse_body(ArticleUpdate)
    kb = knowledge_base()
    art = kb.get(article_id, g.user, g.scope)
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version", None)
    if "site" in changes:
        changes["site_code"] = changes.pop("site")
    for name in ("title", "body", "category", "tags", "published"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"{name}: must not be null", details=[{"field": name, "message": "null"}])
    kb.update(g.actor, g.user, g.scope, art, version=version, **changes)
    return jsonify(article_dict(art))


# Links ---------------------------------------------------------------------------------------
class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description=", ".join(LINK_TYPES))
    id: str = Field(min_length=1, max_length=64)


@operation("/tickets/<ref>/links", "POST",
           "Link a ticket to an article, site, device, ticket, outage, tenant or VM (articles, sites, devices "
           "and tickets must exist in the caller's scope)", "servicedesk.work", body=LinkCreate)
def link_ticket(ref: str) -> Any:
    body = parse_body(LinkCreate)
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    svc.tickets.require_worker(g.user, t)
    target = body.id.strip()
    if body.type == "article":
        target = str(knowledge_base().get(target, g.user, g.scope).id)
    elif body.type == "site":
        target = svc.sites.get(target, g.scope).code
    elif body.type == "device":
        target = svc.devices.get(target, g.scope).hostname
    elif body.type == "ticket":
        other = svc.tickets.get(target, g.user, g.scope)
        if other.id == t.id:
            raise ValidationFailed("id: a ticket cannot be linked to itself",
                                   details=[{"field": "id", "message": "the same ticket"}])
        target = other.number
    link = svc.tickets.link(g.actor, t, body.type, target)
    return jsonify({"ticket": t.number, "type": link.target_type, "id": link.target_id}), 201


# Attachments ---------------------------------------------------------------------------------
@operation("/tickets/<ref>/attachments", "GET", "A ticket's attachments", "servicedesk.use")
def list_attachments(ref: str) -> Any:
    t = services().tickets.get(ref, g.user, g.scope)
    return jsonify({"items": [attachment_dict(a) for a in attachment_store().list(t)]})


@operation("/tickets/<ref>/attachments", "POST",
           f"Attach a file (multipart field 'file'; at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB; "
           "pdf, png, jpg, gif, txt, log, csv, xlsx, docx or zip, checked by content)", "servicedesk.use")
def upload_attachment(ref: str) -> Any:
    t = services().tickets.get(ref, g.user, g.scope)
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed("file: send the file as multipart/form-data field 'file'",
                               details=[{"field": "file", "message": "missing"}])
    data = upload.stream.read(MAX_ATTACHMENT_BYTES + 1)
    att = attachment_store().add(g.actor, t, upload.filename or "", data)
    return jsonify(attachment_dict(att)), 201


@operation("/tickets/<ref>/attachments/<int:attachment_id>", "GET",
           "Download an attachment (checksum verified; always as a download)", "servicedesk.use")
def download_attachment(ref: str, attachment_id: int) -> Any:
    t = services().tickets.get(ref, g.user, g.scope)
    store = attachment_store()
    att = store.get(t, attachment_id)
    data = store.read(att)
    resp = send_file(io.BytesIO(data), mimetype=att.content_type, as_attachment=True, download_name=att.filename,
                     etag=att.sha256, max_age=0, conditional=False)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


# Ratings -------------------------------------------------------------------------------------
class RatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=MAX_COMMENT)


@operation("/tickets/<ref>/rating", "GET", "A ticket's resolution rating (null if none)", "servicedesk.use")
def get_rating(ref: str) -> Any:
    t = services().tickets.get(ref, g.user, g.scope)
    r = ratings().get(t)
    return jsonify({"ticket": t.number, "rating": rating_dict(r) if r is not None else None})


@operation("/tickets/<ref>/rating", "POST",
           "The requester rates a resolved or closed ticket (1-5 and a comment; once per resolution)",
           "servicedesk.use", body=RatingBody)
def rate_ticket(ref: str) -> Any:
    body = parse_body(RatingBody)
    t = services().tickets.get(ref, g.user, g.scope)
    r = ratings().rate(g.actor, t, score=body.score, comment=body.comment, rater=g.user)
    return jsonify({"ticket": t.number, "rating": rating_dict(r)}), 201
