"""The report lifecycle: build a draft, rebuild it, publish it (archived, immutable), re-check a
published month against the data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationFailed
from ..policies.service import PolicyService
from .builder import build_connectivity_report, for_scope, month_key, parse_month
from .models import AssessmentReport, ReportState

if TYPE_CHECKING:
    from ..bootstrap import Container

#: Keys of the data that describe the build, not the figures.
VOLATILE = ("generated_at", "state", "published_at", "scope")
MAX_CHANGES = 200


def figures(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in VOLATILE}


def _ident(item: Any) -> str | None:
    if isinstance(item, dict):
        for key in ("id", "site", "code", "tier", "day", "month", "from"):
            if key in item:
                return f"{key}={item[key]}"
    return None


def diff(before: Any, after: Any, path: str = "", out: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Changes between two report datas: ``{"path", "before", "after"}``; list items matched by their id."""
    out = [] if out is None else out
    if len(out) >= MAX_CHANGES:
        return out
    if isinstance(before, dict) and isinstance(after, dict):
        for k in sorted(set(before) | set(after), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in before:
                out.append({"path": p, "before": None, "after": after[k]})
            elif k not in after:
                out.append({"path": p, "before": before[k], "after": None})
            else:
                diff(before[k], after[k], p, out)
    elif isinstance(before, list) and isinstance(after, list):
        ids_b = [_ident(x) for x in before]
        ids_a = [_ident(x) for x in after]
        if all(ids_b) and all(ids_a):
            mb = dict(zip(ids_b, before, strict=True))
            ma = dict(zip(ids_a, after, strict=True))
            for i in dict.fromkeys([*ids_b, *ids_a]):
                p = f"{path}[{i}]"
                if i not in mb:
                    out.append({"path": p, "before": None, "after": ma[i]})
                elif i not in ma:
                    out.append({"path": p, "before": mb[i], "after": None})
                else:
                    diff(mb[i], ma[i], p, out)
        elif before != after:
            out.append({"path": path, "before": before, "after": after})
    elif before != after:
        out.append({"path": path, "before": before, "after": after})
    return out[:MAX_CHANGES]


class ReportService:
    def __init__(self, session: Session, audit: AuditLog, policies: PolicyService, files_dir: Path) -> None:
        self.session = session
        self.audit = audit
        self.policies = policies
        self.archive_dir = files_dir / "reports"

    def get(self, month: str) -> AssessmentReport:
        parse_month(month)
        report = self.session.execute(select(AssessmentReport).where(AssessmentReport.month == month)).scalar()
        if report is None:
            raise NotFound(f"no report for {month} yet")
        return report

    def find(self, month: str) -> AssessmentReport | None:
        parse_month(month)
        return self.session.execute(select(AssessmentReport).where(AssessmentReport.month == month)).scalar()

    def all_reports(self) -> list[AssessmentReport]:
        return list(self.session.execute(select(AssessmentReport).order_by(AssessmentReport.month.desc())).scalars())

    def compute(self, month: str, *, targets: dict[str, float] | None = None,
                now: dt.datetime | None = None) -> dict[str, Any]:
        """The month's figures now, stored nowhere (a preview, or the basis of a draft)."""
        year, mon = parse_month(month)
        return build_connectivity_report(self.session, year, mon,
                                         targets or self.policies.assessment().targets(), now=now)

    def data_for(self, month: str, scope: Scope, *, province: str | None = None,
                 now: dt.datetime | None = None) -> dict[str, Any]:
        """What a user may read of a month: the stored report (drafts only for national roles), or for
        national roles a preview computed now; limited to the user's subtree (and ``province``)."""
        report = self.find(month)
        if report is not None and (report.state == ReportState.PUBLISHED or scope.national):
            data = {**report.data, "state": report.state,
                    "published_at": report.published_at.isoformat() if report.published_at else None}
        elif scope.national:
            data = {**self.compute(month, now=now), "state": "preview", "published_at": None}
        else:
            raise NotFound(f"the {month} report has not been published yet")
        return for_scope(data, scope, province=province)

    def generate(self, actor: Actor, month: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Build or rebuild the draft; for a published month, recompute and report what differs.

        Returns {"month", "state", "action": created|rebuilt|checked, "identical"?, "changes"?}."""
        year, mon = parse_month(month)
        month = month_key(year, mon)
        now = now or utcnow()
        report = self.find(month)
        if report is not None and report.state == ReportState.PUBLISHED:
            fresh = build_connectivity_report(self.session, year, mon, report.targets, now=now)
            changes = diff(figures(report.data), figures(fresh))
            current = self.policies.assessment().targets()
            check = {"at": now.isoformat(), "by": actor.username, "identical": not changes, "changes": changes,
                     "targets_changed_since": current != report.targets}
            report.last_check = check
            self.audit.record(actor, "report.regenerate", target_type="report", target_id=month,
                              after={"identical": not changes, "changes": len(changes)})
            return {"month": month, "state": report.state, "action": "checked", "identical": not changes,
                    "changes": changes}
        targets = self.policies.assessment().targets()
        data = build_connectivity_report(self.session, year, mon, targets, now=now)
        if report is None:
            report = AssessmentReport(month=month, state=ReportState.DRAFT, data=data, targets=targets,
                                      demo=data["demo_data"], generated_at=now, generated_by=actor.username,
                                      revision=1)
            self.session.add(report)
            action = "created"
        else:
            report.data = data
            report.targets = targets
            report.demo = data["demo_data"]
            report.generated_at = now
            report.generated_by = actor.username
            report.revision += 1
            action = "rebuilt"
        self.session.flush()
        self.audit.record(actor, f"report.{'generate' if action == 'created' else 'rebuild'}", target_type="report",
                          target_id=month, after={"revision": report.revision, "targets": targets,
                                                  "partial": data["period"]["partial"]})
        return {"month": month, "state": report.state, "action": action, "revision": report.revision}

    def check_publishable(self, report: AssessmentReport) -> None:
        if report.state == ReportState.PUBLISHED:
            raise Conflict(f"{report.month} was already published on {report.published_at:%Y-%m-%d} by "
                           f"{report.published_by}; a published report is immutable")
        if report.data["period"]["partial"]:
            raise ValidationFailed(f"{report.month} is not over yet: publish it after the month ends",
                                   details=[{"field": "month", "message": "month not over"}])

    def start_publication(self, actor: Actor, month: str) -> Any:
        """Queue the publication job; refused when the report cannot be published or is being published."""
        from ..jobs.models import Job
        from ..jobs.service import JobService

        report = self.get(month)
        self.check_publishable(report)
        for job in self.session.execute(select(Job).where(Job.kind == "reports.publish",
                                                          Job.state.in_(("queued", "running")))).scalars():
            if (job.params or {}).get("month") == report.month:
                raise Conflict(f"{report.month} is already being published (job {job.id})")
        return JobService(self.session, self.audit).enqueue(actor, "reports.publish", {"month": report.month})

    def finish_publication(self, actor: Actor, month: str, revision: int, data: dict[str, Any],
                           files: dict[str, bytes], now: dt.datetime) -> AssessmentReport:
        """Archive the rendered files and freeze the report, if it is still the draft they were made from."""
        report = self.get(month)
        self.check_publishable(report)
        if report.revision != revision:
            raise Conflict(f"the {month} draft was rebuilt while it was being published; publish it again")
        folder = self.archive_dir / month
        folder.mkdir(parents=True, exist_ok=True)
        archive = []
        for name, content in files.items():
            path = folder / name
            tmp = path.with_suffix(path.suffix + ".part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
            archive.append({"name": name, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)})
        report.data = data
        report.state = ReportState.PUBLISHED
        report.published_at = now
        report.published_by = actor.username
        report.archive = archive
        self.session.flush()
        self.audit.record(actor, "report.publish", target_type="report", target_id=month,
                          after={"archive": archive, "targets": report.targets, "revision": revision})
        return report

    def archived(self, report: AssessmentReport, suffix: str) -> tuple[str, bytes]:
        """An archived file of a published report, after checking its checksum."""
        for item in report.archive or []:
            if item["name"].endswith(suffix):
                path = self.archive_dir / report.month / item["name"]
                try:
                    content = path.read_bytes()
                except FileNotFoundError as exc:
                    raise Conflict(f"the archived file {item['name']} is missing") from exc
                if hashlib.sha256(content).hexdigest() != item["sha256"]:
                    raise Conflict(f"the archived file {item['name']} does not match its checksum")
                return item["name"], content
        raise NotFound(f"{report.month} has no archived {suffix} file")

    def verify_archive(self, report: AssessmentReport) -> list[str]:
        """Problems with a published report's archive (empty when intact)."""
        problems = []
        for item in report.archive or []:
            try:
                self.archived(report, item["name"])
            except (Conflict, NotFound) as exc:
                problems.append(str(exc))
        return problems


def publish_report(container: Container, actor: Actor, month: str,
                   progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Publish a draft: render its PDF (a national report takes WeasyPrint about a minute) outside any
    transaction, then archive the PDF and the data with checksums and freeze the report in a short one.
    Refused when already published, when the month is not over, or when the draft changed meanwhile."""
    from .render import render_pdf

    say = progress or (lambda _f, _m: None)
    now = utcnow()
    with container.unit_of_work() as svc:
        report = svc.reports.get(month)
        svc.reports.check_publishable(report)
        revision = report.revision
        data = {**report.data, "state": ReportState.PUBLISHED.value, "published_at": now.isoformat()}
    say(0.05, "rendering the PDF")
    files = {f"connectivity-{month}.pdf": render_pdf(data, "zh_CN"),
             f"connectivity-{month}.json": json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode()}
    say(0.9, "archiving")
    with container.unit_of_work() as svc:
        report = svc.reports.finish_publication(actor, month, revision, data, files, now)
        return {"month": month, "state": report.state, "archive": report.archive,
                "published_at": now.isoformat(), "published_by": actor.username}


def cached_pdf(files_dir: Path, data: dict[str, Any], locale: str) -> bytes:
    """The PDF of report data, rendered once per distinct content and locale (a national PDF takes a
    minute to render); the newest 50 renderings are kept."""
    from .render import render_pdf

    key = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
    folder = files_dir / "reports" / "cache"
    path = folder / f"{key}-{locale}.pdf"
    if path.exists():
        return path.read_bytes()
    content = render_pdf(data, locale)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(content)
    tmp.replace(path)
    for old in sorted(folder.glob("*.pdf"), key=lambda p: p.stat().st_mtime, reverse=True)[50:]:
        old.unlink(missing_ok=True)
    return content


FORMATS = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "csv": "application/zip"}


def export(data: dict[str, Any], fmt: str, locale: str = "zh_CN", *,
           files_dir: Path | None = None) -> tuple[bytes, str, str]:
    """(content, media type, file name) of a report in one of FORMATS."""
    from . import render

    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                               details=[{"field": "format", "message": "unknown format"}])
    if locale not in ("zh_CN", "en"):
        raise ValidationFailed(f"locale must be zh_CN or en, got {locale!r}",
                               details=[{"field": "locale", "message": "unknown locale"}])
    scope = (data.get("scope") or {}).get("code")
    name = f"connectivity-{data['month']}" + (f"-{scope}" if scope else "")
    if fmt == "json":
        content = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode()
    elif fmt == "html":
        content = render.render_html(data, locale).encode()
    elif fmt == "pdf":
        content = cached_pdf(files_dir, data, locale) if files_dir else render.render_pdf(data, locale)
    elif fmt == "xlsx":
        content = render.render_xlsx(data, locale)
    else:
        content = render.render_csv_zip(data, locale)
    return content, FORMATS[fmt], f"{name}.{'zip' if fmt == 'csv' else fmt}"
