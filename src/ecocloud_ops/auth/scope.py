"""Site scope: national roles see every site; the others see their own site's subtree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_

from ..sites.models import Site
from .permissions import NATIONAL_ROLES


@dataclass(frozen=True)
class Scope:
    national: bool
    #: Materialized path of the root site of the visible subtree, e.g. ``000000/130000/``.
    root_path: str

    @classmethod
    def for_user(cls, role: str, site_path: str) -> Scope:
        return cls(national=role in {r.value for r in NATIONAL_ROLES} or site_path.count("/") <= 1,
                   root_path=site_path)

    @classmethod
    def everything(cls) -> Scope:
        return cls(True, "000000/")

    def contains_path(self, path: str) -> bool:
        return self.national or path.startswith(self.root_path)

    def site_clause(self, column: Any = None) -> Any:
        """A WHERE clause limiting a query over sites (or anything joined to a site path)."""
        col = Site.path if column is None else column
        if self.national:
            return col.isnot(None)
        return col.startswith(self.root_path, autoescape=True)

    def code_clause(self, code_column: Any) -> Any:
        """Limit rows that carry a site code (jobs, later devices) by a subquery on sites."""
        from sqlalchemy import select

        if self.national:
            return code_column.isnot(None)
        return or_(code_column.in_(select(Site.code).where(self.site_clause())))

