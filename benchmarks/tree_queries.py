"""Site-tree query speed on the national tree (~3,200 sites), path-prefix vs. a recursive CTE.

The platform answers subtree and ancestor questions with a materialized path (``000000/130000/…``)
and a prefix match. The baseline, measured in the same run on the same database, is the textbook
alternative: a recursive common-table expression over ``parent_id``.

    .venv/bin/python benchmarks/tree_queries.py                      # SQLite in a temporary folder
    .venv/bin/python benchmarks/tree_queries.py postgresql+psycopg://ecocloud:ecocloud@127.0.0.1/bench
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.config import load_settings
from ecocloud_ops.migrate import upgrade
from ecocloud_ops.sites.models import Site


def cte_subtree_ids(code: str) -> Any:
    sub = select(Site.id).where(Site.code == code).cte("sub", recursive=True)
    return sub.union_all(select(Site.id).join(sub, Site.parent_id == sub.c.id))


def cte_ancestor_ids(code: str) -> Any:
    anc = select(Site.id, Site.parent_id).where(Site.code == code).cte("anc", recursive=True)
    return anc.union_all(select(Site.id, Site.parent_id).join(anc, Site.id == anc.c.parent_id))


def timed(fn: Callable[[], object], repeat: int = 50) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    c = Container(load_settings(environ={}, instance_dir=tmp, database_url=url))
    upgrade(c)
    with c.unit_of_work() as svc:
        t0 = time.perf_counter()
        svc.sites.seed_national(Actor("bench"))
        seed = time.perf_counter() - t0
    everything = Scope.everything()
    hebei = Scope.for_user("provincial_staff", "000000/130000/")
    print(f"database: {c.engine.dialect.name}; national seed {seed:.2f} s")
    print(f"{'question':<40} {'path prefix (ms)':>17} {'recursive CTE (ms)':>19}")
    with c.unit_of_work() as svc:
        s = svc.session
        county = svc.sites.get("130102", everything)
        def cte_rows(code: str) -> list[Site]:
            ids = cte_subtree_ids(code)
            return list(s.execute(select(Site).where(Site.id.in_(select(ids.c.id))).order_by(Site.code)).scalars())

        def cte_count(code: str) -> int:
            ids = cte_subtree_ids(code)
            return int(s.execute(select(func.count()).select_from(ids)).scalar_one())

        def prefix_count(path: str) -> int:
            return int(s.execute(select(func.count()).where(Site.path.startswith(path))).scalar_one())

        def cte_ancestors(code: str) -> list[Site]:
            ids = cte_ancestor_ids(code)
            return list(s.execute(select(Site).where(Site.id.in_(select(ids.c.id)))).scalars())

        rows = [
            ("subtree rows of the ministry (3,208)", lambda: svc.sites.subtree("000000", everything),
             lambda: cte_rows("000000")),
            ("subtree rows of Hebei", lambda: svc.sites.subtree("130000", everything), lambda: cte_rows("130000")),
            ("count of Hebei's subtree", lambda: prefix_count("000000/130000/"), lambda: cte_count("130000")),
            ("ancestors of a county", lambda: svc.sites.ancestors(county), lambda: cte_ancestors("130102")),
            ("per-tier counts in Hebei's scope", lambda: svc.sites.counts_by_tier(hebei),
             lambda: cte_count("130000")),
        ]
        for name, ours, baseline in rows:
            print(f"{name:<40} {timed(ours):>17.2f} {timed(baseline):>19.2f}")
    c.dispose()


if __name__ == "__main__":
    main()
