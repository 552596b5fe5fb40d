"""Knowledge base (CRUD, search ranking, read and write scope, links to tickets), ticket attachments
(round trip, limits, type sniffing, scope, storage on disk) and resolution ratings (rules, tokens)."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from itsdangerous.timed import TimestampSigner
from sqlalchemy import func, select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.errors import PermissionDenied
from ecocloud_ops.servicedesk.attachments import MAX_ATTACHMENT_BYTES, Attachment, AttachmentService
from ecocloud_ops.servicedesk.models import Ticket
from ecocloud_ops.servicedesk.ratings import (
    RatingService,
    RatingTokenExpired,
    RatingTokenInvalid,
    rating_token,
    verify_rating_token,
)
from tests.conftest import TEST_ACTOR, Account, api_token

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"This program cannot be run"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(container: Container, make_user: Callable[..., Account]) -> dict[str, dict[str, str]]:
    accounts = {"agent": make_user("desk.agent", "desk_agent", "000000"),
                "hebei": make_user("hb.staff", "provincial_staff", "130000"),
                "sjz": make_user("sjz.staff", "provincial_staff", "130100"),
                "guangdong": make_user("gd.staff", "provincial_staff", "440000"),
                "vendor_a": make_user("vendor.a", "vendor_engineer", "130000", team="vendor-a"),
                "vendor_b": make_user("vendor.b", "vendor_engineer", "000000", team="vendor-b")}
    return {k: auth(api_token(container, a)) for k, a in accounts.items()}


def audit_actions(container: Container, prefix: str) -> list[AuditEntry]:
    with container.unit_of_work() as svc:
        return list(svc.session.execute(select(AuditEntry).where(AuditEntry.action.startswith(prefix))
                                        .order_by(AuditEntry.seq)).scalars())


def new_article(client: FlaskClient, who: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/kb/articles", json={"title": "标题", **body}, headers=who)
    assert r.status_code == 201, r.json
    return dict(r.json)


# Knowledge base --------------------------------------------------------------------------------
def test_articles_crud_publish_views_and_audit(client: FlaskClient, people: dict[str, dict[str, str]],
                                               container: Container) -> None:
    a = new_article(client, people["agent"], title="VPN 无法连接", body="1. 检查证书\n2. 重启客户端",
                    category="network_fault", tags=["VPN", " vpn ", "证书"])
    assert a["tags"] == ["VPN", "证书"], "blank-padded and case-insensitive duplicates are dropped"
    assert a["site"] is None and a["published"] is False and a["author"] == "desk.agent" and a["views"] == 0
    url = f"/api/v1/kb/articles/{a['id']}"
    # A draft is for writers only.
    assert client.get(url, headers=people["hebei"]).status_code == 404
    assert client.get("/api/v1/kb/articles", headers=people["hebei"]).json == {"total": 0, "items": []}
    assert client.get(url, headers=people["agent"]).status_code == 200
    # Readers cannot write.
    assert client.post("/api/v1/kb/articles", json={"title": "x"}, headers=people["hebei"]).status_code == 403
    assert client.patch(url, json={"published": True}, headers=people["hebei"]).status_code == 403
    # Bad input names the field.
    for body, field in (({"category": "misc"}, "category"), ({"tags": ["x" * 33]}, "tags"),
                        ({"title": ""}, "title"), ({"colour": "red"}, "colour"), ({"title": None}, "title")):
        r = client.patch(url, json=body, headers=people["agent"])
        assert r.status_code == 422 and field in r.json["error"]["message"], (body, r.json)
    # Publish, edit, stale edit.
    r = client.patch(url, json={"published": True, "body": "1. 检查证书有效期", "version": a["version"]},
                     headers=people["agent"])
    assert r.status_code == 200 and r.json["published"] and r.json["body"] == "1. 检查证书有效期"
    assert r.json["published_at"] is not None and r.json["version"] > a["version"]
    stale = client.patch(url, json={"title": "旧版本", "version": a["version"]}, headers=people["agent"])
    assert stale.status_code == 409
    # Readers now see it; every read counts (the agent's read of the draft was the first).
    assert client.get(url, headers=people["hebei"]).json["views"] == 2
    assert client.get(url, headers=people["sjz"]).json["views"] == 3
    listed = client.get("/api/v1/kb/articles", headers=people["hebei"]).json
    assert [x["id"] for x in listed["items"]] == [a["id"]] and "body" not in listed["items"][0]
    # Withdrawn: gone for readers again.
    assert client.patch(url, json={"published": False}, headers=people["agent"]).status_code == 200
    assert client.get(url, headers=people["hebei"]).status_code == 404
    actions = [(e.action, e.outcome) for e in audit_actions(container, "kb.")]
    assert actions == [("kb.create", "success"), ("kb.update", "success"), ("kb.publish", "success"),
                       ("kb.withdraw", "success")]
    update = audit_actions(container, "kb.update")[0]
    assert update.before == {"body_length": 16} and update.after == {"body_length": 10}


def test_search_ranks_title_then_tags_then_body(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    agent = people["agent"]
    in_body = new_article(client, agent, title="防火墙策略", body="放行 VPN 端口 443", published=True)["id"]
    in_title = new_article(client, agent, title="vpn 客户端报错", body="重装", published=True)["id"]
    in_tags = new_article(client, agent, title="远程办公", body="见附件", tags=["Vpn"], published=True,
                          category="account_access")["id"]
    new_article(client, agent, title="打印机", body="换墨盒", published=True)
    new_article(client, agent, title="VPN 草稿", body="未发布")  # a draft: not for readers

    def search(q: str, who: str = "hebei", **extra: str) -> list[int]:
        r = client.get("/api/v1/kb/articles", query_string={"q": q, **extra}, headers=people[who])
        assert r.status_code == 200, r.json
        return [x["id"] for x in r.json["items"]]

    assert search("VPN") == [in_title, in_tags, in_body]
    assert search("vPn") == [in_title, in_tags, in_body], "case-insensitive"
    assert search("vpn 443") == [in_body], "every word must match"
    assert search("vpn", category="account_access") == [in_tags]
    assert search("%") == [] and search("_") == [], "LIKE wildcards are literal"
    assert len(search("vpn", "agent")) == 4, "writers also find drafts"


def test_read_and_write_scope(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    agent = people["agent"]
    national = new_article(client, agent, title="全国 通用", published=True)
    gd = new_article(client, agent, title="广东 专用", site="440000", published=True)
    sjz = new_article(client, agent, title="石家庄 专用", site="130100", published=True)
    # A Hebei vendor writes for Hebei: their own site by default; other provinces do not exist for them;
    # a national article needs a national role.
    own = new_article(client, people["vendor_a"], title="河北 供应商", published=True)
    assert own["site"] == "130000"
    assert client.post("/api/v1/kb/articles", json={"title": "x", "site": "440000"},
                       headers=people["vendor_a"]).status_code == 404
    assert client.post("/api/v1/kb/articles", json={"title": "x", "site": None},
                       headers=people["vendor_a"]).status_code == 403
    assert client.patch(f"/api/v1/kb/articles/{national['id']}", json={"title": "改"},
                        headers=people["vendor_a"]).status_code == 403
    assert client.patch(f"/api/v1/kb/articles/{gd['id']}", json={"title": "改"},
                        headers=people["vendor_a"]).status_code == 404
    assert client.patch(f"/api/v1/kb/articles/{sjz['id']}", json={"title": "石家庄 改"},
                        headers=people["vendor_a"]).status_code == 200
    assert client.patch(f"/api/v1/kb/articles/{own['id']}", json={"site": "440000"},
                        headers=people["vendor_a"]).status_code == 404, "cannot move it out of scope"

    def readable(who: str) -> set[int]:
        return {x["id"] for x in client.get("/api/v1/kb/articles", headers=people[who]).json["items"]}

    # Provinces read national articles, their subtree's, and (a city) its province's.
    assert readable("hebei") == {national["id"], sjz["id"], own["id"]}
    assert readable("sjz") == {national["id"], sjz["id"], own["id"]}
    assert readable("guangdong") == {national["id"], gd["id"]}
    assert readable("agent") == {national["id"], gd["id"], sjz["id"], own["id"]}
    assert client.get(f"/api/v1/kb/articles/{gd['id']}", headers=people["hebei"]).status_code == 404


def test_links_validate_the_target_in_scope(client: FlaskClient, people: dict[str, dict[str, str]],
                                            container: Container) -> None:
    t = client.post("/api/v1/tickets", json={"title": "VPN 断开", "site": "130100"}, headers=people["hebei"]).json
    assert client.post(f"/api/v1/tickets/{t['number']}/assign", json={"team": "vendor-a"},
                       headers=people["agent"]).status_code == 200
    other = client.post("/api/v1/tickets", json={"title": "另一张"}, headers=people["hebei"]).json
    hb_article = new_article(client, people["agent"], title="河北", site="130000", published=True)
    gd_article = new_article(client, people["agent"], title="广东", site="440000", published=True)
    links = f"/api/v1/tickets/{t['number']}/links"
    r = client.post(links, json={"type": "article", "id": str(hb_article["id"])}, headers=people["vendor_a"])
    assert r.status_code == 201 and r.json == {"ticket": t["number"], "type": "article", "id": str(hb_article["id"])}
    for body, who, status in (
            ({"type": "article", "id": str(gd_article["id"])}, "vendor_a", 404),  # another province's article
            ({"type": "article", "id": "999999"}, "agent", 404),
            ({"type": "site", "id": "440000"}, "vendor_a", 404),
            ({"type": "site", "id": "999999"}, "agent", 404),
            ({"type": "device", "id": "no-such-router"}, "agent", 404),
            ({"type": "ticket", "id": t["number"]}, "agent", 422),  # itself
            ({"type": "planet", "id": "mars"}, "agent", 422),
            ({"type": "article", "id": str(hb_article["id"])}, "hebei", 403),  # servicedesk.use only
            ({"type": "article", "id": str(hb_article["id"])}, "vendor_b", 404)):  # another team's ticket
        r = client.post(links, json=body, headers=people[who])
        assert r.status_code == status, (body, who, r.json)
    assert client.post(links, json={"type": "site", "id": "130100"}, headers=people["agent"]).status_code == 201
    assert client.post(links, json={"type": "ticket", "id": str(other["id"])},
                       headers=people["agent"]).status_code == 201
    got = client.get(f"/api/v1/tickets/{t['number']}", headers=people["hebei"]).json
    assert got["links"] == [{"type": "article", "id": str(hb_article["id"])}, {"type": "site", "id": "130100"},
                            {"type": "ticket", "id": other["number"]}], "ids are normalized"
    assert [h["new"] for h in got["history"] if h["kind"] == "link"] == [str(hb_article["id"]), "130100",
                                                                         other["number"]]
    assert len(audit_actions(container, "ticket.link")) == 3


# Attachments -----------------------------------------------------------------------------------
def upload(client: FlaskClient, ref: str, who: dict[str, str], name: str, data: bytes) -> Any:
    return client.post(f"/api/v1/tickets/{ref}/attachments", data={"file": (io.BytesIO(data), name)},
                       headers=who, content_type="multipart/form-data")


def stored_files(container: Container) -> list[Path]:
    root = container.settings.files_dir / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def attachment_rows(container: Container) -> int:
    with container.unit_of_work() as svc:
        return int(svc.session.execute(select(func.count()).select_from(Attachment)).scalar_one())


@pytest.fixture
def ticket(client: FlaskClient, people: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A Hebei ticket (Shijiazhuang) worked by vendor-a."""
    t = client.post("/api/v1/tickets", json={"title": "交换机告警", "site": "130100"}, headers=people["hebei"]).json
    assert client.post(f"/api/v1/tickets/{t['number']}/assign", json={"team": "vendor-a"},
                       headers=people["agent"]).status_code == 200
    return dict(t)


def test_attachment_round_trip(client: FlaskClient, people: dict[str, dict[str, str]], container: Container,
                               ticket: dict[str, Any]) -> None:
    ref = ticket["number"]
    r = upload(client, ref, people["hebei"], "../../etc/截图\x07.png", PNG)
    assert r.status_code == 201, r.json
    att = r.json
    assert att["filename"] == "截图.png" and att["content_type"] == "image/png"
    assert att["size"] == len(PNG) and att["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert att["uploaded_by"] == "hb.staff"
    # On disk: under files/attachments/<ticket id>/, a random name, mode 0640, the same bytes.
    [path] = stored_files(container)
    assert path.parent == container.settings.files_dir / "attachments" / str(ticket["id"])
    assert "截图" not in path.name and len(path.name) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes() == PNG
    # Listed and downloaded by everyone who sees the ticket: requester, a city user below, the team, the desk.
    for who in ("hebei", "sjz", "vendor_a", "agent"):
        listed = client.get(f"/api/v1/tickets/{ref}/attachments", headers=people[who])
        assert listed.status_code == 200 and [x["id"] for x in listed.json["items"]] == [att["id"]]
        d = client.get(f"/api/v1/tickets/{ref}/attachments/{att['id']}", headers=people[who])
        assert d.status_code == 200 and d.data == PNG
        assert d.headers["Content-Type"] == "image/png"
        assert d.headers["X-Content-Type-Options"] == "nosniff"
        disposition = d.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and "filename*=UTF-8''%E6%88%AA%E5%9B%BE.png" in disposition
    # History and audit.
    history = client.get(f"/api/v1/tickets/{ref}", headers=people["hebei"]).json["history"]
    assert [h["new"] for h in history if h["kind"] == "attachment"] == ["截图.png"]
    [entry] = audit_actions(container, "ticket.attachment")
    assert entry.target_id == ref and entry.after["sha256"] == att["sha256"] and entry.actor == "hb.staff"
    # A file changed on disk is not served.
    path.write_bytes(PNG + b"tampered")
    d = client.get(f"/api/v1/tickets/{ref}/attachments/{att['id']}", headers=people["hebei"])
    assert d.status_code == 500 and d.json["error"]["code"] == "attachment_corrupt" and PNG not in d.data


def test_attachment_size_and_type_limits(client: FlaskClient, people: dict[str, dict[str, str]],
                                         container: Container, ticket: dict[str, Any]) -> None:
    ref, who = ticket["number"], people["hebei"]
    too_big = upload(client, ref, who, "big.log", b"a" * (MAX_ATTACHMENT_BYTES + 1))
    assert too_big.status_code == 413 and too_big.json["error"]["code"] == "attachment_too_large"
    assert "10 MiB" in too_big.json["error"]["message"]
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("readme.txt", "hello")
    refused = {
        "setup.exe": (EXE, ".exe is not allowed"),
        "report.pdf": (EXE, "Windows executable"),
        "page.html": (b"<html><body>hi</body></html>", ".html is not allowed"),
        "logo.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", ".svg is not allowed"),
        "shot.png": (b"#!/bin/sh\nrm -rf /\n", "script"),
        "photo.jpg": (b"<script>alert(1)</script>", "not a JPEG"),
        "notes.txt": (b"  <!DOCTYPE html><script>alert(1)</script>", "markup"),
        "dump.log": (b"abc\x00\x01def", "NUL"),
        "sheet.xlsx": (plain_zip.getvalue(), "not an Office xlsx"),
        "noext": (b"text", "(none) is not allowed"),
        "empty.txt": (b"", "empty"),
    }
    for name, (data, message) in refused.items():
        r = upload(client, ref, who, name, data)
        assert r.status_code == 422 and message in r.json["error"]["message"], (name, r.json)
    r = client.post(f"/api/v1/tickets/{ref}/attachments", data={"other": "x"}, headers=who,
                    content_type="multipart/form-data")
    assert r.status_code == 422 and r.json["error"]["details"] == [{"field": "file", "message": "missing"}]
    assert stored_files(container) == [] and attachment_rows(container) == 0, "nothing written for refusals"
    # What is allowed: the limit exactly, a real docx, a zip, a GB18030 log, a text file starting with "MZ".
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    accepted = {"limit.txt": b"a" * MAX_ATTACHMENT_BYTES, "report.docx": docx.getvalue(),
                "bundle.zip": plain_zip.getvalue(), "设备.log": "交换机 端口 down\r\n".encode("gb18030"),
                "mz.csv": b"MZ,model\n1,2\n", "scan.pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"}
    for name, data in accepted.items():
        r = upload(client, ref, who, name, data)
        assert r.status_code == 201, (name, r.json)
    types = {x["filename"]: x["content_type"] for x in
             client.get(f"/api/v1/tickets/{ref}/attachments", headers=who).json["items"]}
    assert types == {"limit.txt": "text/plain", "report.docx": "application/vnd.openxmlformats-officedocument."
                     "wordprocessingml.document", "bundle.zip": "application/zip", "设备.log": "text/plain",
                     "mz.csv": "text/csv", "scan.pdf": "application/pdf"}


def test_attachments_are_for_those_who_see_the_ticket(client: FlaskClient, people: dict[str, dict[str, str]],
                                                      container: Container, ticket: dict[str, Any]) -> None:
    ref = ticket["number"]
    att = upload(client, ref, people["vendor_a"], "fix.txt", b"replaced the SFP\n").json
    files, rows = stored_files(container), attachment_rows(container)
    audits = len(audit_actions(container, "ticket.attachment"))
    for who in ("guangdong", "vendor_b"):
        assert client.get(f"/api/v1/tickets/{ref}/attachments", headers=people[who]).status_code == 404
        d = client.get(f"/api/v1/tickets/{ref}/attachments/{att['id']}", headers=people[who])
        assert d.status_code == 404 and b"SFP" not in d.data and b"fix.txt" not in d.data
        r = upload(client, ref, people[who], "probe.txt", b"hello\n")
        assert r.status_code == 404, who
    assert stored_files(container) == files and attachment_rows(container) == rows
    assert len(audit_actions(container, "ticket.attachment")) == audits
    # An attachment is reached only through its own ticket.
    gd = client.post("/api/v1/tickets", json={"title": "广东"}, headers=people["guangdong"]).json
    assert client.get(f"/api/v1/tickets/{gd['number']}/attachments/{att['id']}",
                      headers=people["guangdong"]).status_code == 404
    assert client.get(f"/api/v1/tickets/{ref}/attachments/{att['id'] + 1000}",
                      headers=people["hebei"]).status_code == 404


def test_a_rolled_back_upload_leaves_no_file(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc:
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="x", site_code="130000")
        ticket_id = t.id
    with pytest.raises(RuntimeError), container.unit_of_work() as svc:
        t2 = svc.session.get(Ticket, ticket_id)
        assert t2 is not None
        AttachmentService(svc.session, svc.audit, container.settings.files_dir).add(TEST_ACTOR, t2, "a.txt", b"a\n")
        assert len(stored_files(container)) == 1
        raise RuntimeError("the rest of the request fails")
    assert stored_files(container) == [] and attachment_rows(container) == 0


# Ratings ---------------------------------------------------------------------------------------
def move(client: FlaskClient, ref: str, who: dict[str, str], *states: str) -> None:
    for state in states:
        r = client.post(f"/api/v1/tickets/{ref}/transition", json={"state": state}, headers=who)
        assert r.status_code == 200, (state, r.json)


def test_requester_rates_once_per_resolution(client: FlaskClient, people: dict[str, dict[str, str]],
                                             container: Container, ticket: dict[str, Any]) -> None:
    ref = ticket["number"]
    url = f"/api/v1/tickets/{ref}/rating"
    move(client, ref, people["agent"], "in_progress")
    r = client.post(url, json={"score": 5}, headers=people["hebei"])
    assert r.status_code == 409 and "resolved" in r.json["error"]["message"]
    move(client, ref, people["agent"], "resolved")
    for body in ({"score": 0}, {"score": 6}, {"score": "five"}, {"comment": "no score"},
                 {"score": 3, "comment": "x" * 2001}):
        assert client.post(url, json=body, headers=people["hebei"]).status_code == 422, body
    assert client.post(url, json={"score": 1}, headers=people["agent"]).status_code == 403
    assert client.post(url, json={"score": 1}, headers=people["sjz"]).status_code == 403, "sees it, did not file it"
    assert client.post(url, json={"score": 1}, headers=people["guangdong"]).status_code == 404
    assert client.get(url, headers=people["hebei"]).json == {"ticket": ref, "rating": None}
    r = client.post(url, json={"score": 4, "comment": " 处理及时 "}, headers=people["hebei"])
    assert r.status_code == 201, r.json
    assert r.json["rating"]["score"] == 4 and r.json["rating"]["comment"] == "处理及时"
    assert r.json["rating"]["rated_by"] == "hb.staff" and r.json["rating"]["channel"] == "api"
    assert client.post(url, json={"score": 2}, headers=people["hebei"]).status_code == 409, "once"
    move(client, ref, people["hebei"], "closed")
    r = client.post(url, json={"score": 2}, headers=people["hebei"])
    assert r.status_code == 409, "closing is not a new resolution"
    # Reopened and resolved again: a new rating replaces the first.
    move(client, ref, people["hebei"], "in_progress")
    assert client.post(url, json={"score": 2}, headers=people["hebei"]).status_code == 409, "not resolved now"
    move(client, ref, people["agent"], "resolved")
    r = client.post(url, json={"score": 2, "comment": "又坏了"}, headers=people["hebei"])
    assert r.status_code == 201
    assert client.get(url, headers=people["vendor_a"]).json["rating"]["score"] == 2
    entries = [e for e in audit_actions(container, "ticket.rate") if e.outcome == "success"]
    assert [(e.before["score"] if e.before else None, e.after["score"]) for e in entries] == [(None, 4), (4, 2)]
    history = client.get(f"/api/v1/tickets/{ref}", headers=people["hebei"]).json["history"]
    assert [h["new"] for h in history if h["kind"] == "rating"] == ["4", "2"]


def test_rating_tokens(container: Container, make_user: Callable[..., Account],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    requester = make_user("hb.requester", "provincial_staff", "130000")
    secret = container.secret_key
    with container.unit_of_work() as svc:
        user = svc.auth.by_username(requester.username)
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="x", site_code="130000",
                               requester=user)
        other = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="y", site_code="130000",
                                   requester=user)
        token = rating_token(t, secret)
        claim = verify_rating_token(token, secret)
        assert (claim.ticket_id, claim.number, claim.requester_id) == (t.id, t.number, requester.id)
        assert token.isascii() and all(c.isalnum() or c in "-_." for c in token), "fits in a URL as is"
        # Altered, signed with another key, or another kind of signed value: invalid.
        for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), token.replace(".", "x", 1), "", "abc"):
            with pytest.raises(RatingTokenInvalid):
                verify_rating_token(bad, secret)
        with pytest.raises(RatingTokenInvalid):
            verify_rating_token(token, secret + "-other")
        from itsdangerous import URLSafeTimedSerializer

        with pytest.raises(RatingTokenInvalid):
            verify_rating_token(URLSafeTimedSerializer(secret).dumps({"t": t.id}), secret)
        # 29 days old: still valid; 31 days: expired (a distinct error, 410).
        real = TimestampSigner.get_timestamp
        for days, ok in ((29, True), (31, False)):
            with monkeypatch.context() as m:
                m.setattr(TimestampSigner, "get_timestamp", lambda self, d=days: real(self) - d * 86400)
                old = rating_token(t, secret)
            if ok:
                assert verify_rating_token(old, secret).ticket_id == t.id
            else:
                with pytest.raises(RatingTokenExpired) as exc:
                    verify_rating_token(old, secret)
                assert exc.value.status == 410
        # The claim proves the requester for the e-mail link page; not for another ticket.
        for target in (t, other):
            svc.tickets.transition(TEST_ACTOR, target, "assigned")
            svc.tickets.transition(TEST_ACTOR, target, "in_progress")
            svc.tickets.transition(TEST_ACTOR, target, "resolved")
        ratings = RatingService(svc.session, svc.audit)
        with pytest.raises(PermissionDenied):
            ratings.rate(TEST_ACTOR, other, score=5, claim=claim)
        with pytest.raises(PermissionDenied):
            ratings.rate(TEST_ACTOR, t, score=5)
        r = ratings.rate(TEST_ACTOR, t, score=5, comment="好", claim=claim)
        assert (r.score, r.rated_by, r.channel) == (5, "hb.requester", "email")
