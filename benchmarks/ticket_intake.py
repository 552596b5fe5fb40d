"""Ticket intake under load and the ticket list over 100,000 tickets, through the real server (waitress).

A fresh database ``ecocloud_bench_tickets`` is created on the PostgreSQL server of the URL, migrated and
seeded with the national site tree (3,208 sites); ten provincial staff accounts (one per province) and a
desk agent get API tokens. ``ecocloud-ops serve`` runs as a child process (its default settings, e.g. 8
waitress threads) on a free loopback port. Then, in the same run against the same server:

* intake: ``POST /api/v1/tickets`` by 20 concurrent clients (keep-alive connections, one account each
  in turn), p50/p95 latency and throughput — beside the baseline, ``GET /api/v1/me`` (the trivial
  authenticated endpoint: token lookup, user, JSON) driven the same way; the tickets' numbers are
  checked unique and contiguous;
* the list: 100,000 tickets inserted in bulk (SQLAlchemy core; two years of history, realistic
  spread of sites, types, priorities and statuses, numbers per type and year), then ``ANALYZE``;
  ``GET /api/v1/tickets?limit=50`` as the desk agent (national scope), the desk's open tickets, a
  provincial account's list (subtree scope), and the console's list page ``/servicedesk/`` as the
  logged-in desk agent when the route exists — p50/p95 of 200 sequential requests each; target
  p95 ≤ 200 ms.

The server is stopped and the database dropped at the end.

    .venv/bin/python benchmarks/ticket_intake.py [DATABASE_URL] [--requests 2000] [--clients 20]
    # default URL: postgresql+psycopg://ecocloud:ecocloud@127.0.0.1:5432/postgres
    # (any sqlite URL runs on a temporary SQLite file instead)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import http.cookiejar
import itertools
import json
import random
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text  # noqa: E402
from tests.conftest import PASSWORD, drop_pg_database, make_container, recreate_pg_database  # noqa: E402
from tests.e2e.peers import cli, env_for, free_port, start, stop, wait_health  # noqa: E402

from ecocloud_ops.audit.service import Actor  # noqa: E402
from ecocloud_ops.auth.models import User  # noqa: E402
from ecocloud_ops.config import load_settings  # noqa: E402
from ecocloud_ops.servicedesk.models import PREFIX, Ticket, TicketCounter, TicketType  # noqa: E402
from ecocloud_ops.sites.models import Site  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://ecocloud:ecocloud@127.0.0.1:5432/postgres"
DB_NAME = "ecocloud_bench_tickets"
PROVINCES = ["110000", "120000", "130000", "140000", "150000", "210000", "310000", "320000", "440000", "650000"]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
BULK = 100_000
LIST_REQUESTS = 200
TARGET_MS = 200.0
ACTOR = Actor("bench", channel="system")


@dataclass
class Run:
    """Client-side latencies (seconds) and statuses of one load run."""

    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[Any] = field(default_factory=list)

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def load(label: str, port: int, method: str, path: str, tokens: list[str], *, requests: int, clients: int,
         body: Any = None) -> Run:
    """``requests`` calls by ``clients`` threads, each on its own keep-alive connection."""
    run = Run(label)
    counter = itertools.count()
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        token = tokens[k % len(tokens)]
        mine: list[tuple[float, int, Any]] = []
        gate.wait()
        while (i := next(counter)) < requests:
            payload = json.dumps(body(i, k)).encode() if callable(body) else None
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=payload, headers=headers)
                r = conn.getresponse()
                raw = r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                raw, status = b"", 0
            dt_s = time.perf_counter() - t0
            mine.append((dt_s, status, json.loads(raw) if raw and method == "POST" else None))
        conn.close()
        with lock:
            for lat, status, parsed in mine:
                run.latencies.append(lat)
                run.statuses[status] = run.statuses.get(status, 0) + 1
                if parsed is not None and status == 201:
                    run.bodies.append(parsed)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - t0
    return run


def sequential(label: str, fetch: Any, n: int = LIST_REQUESTS, warmup: int = 10) -> Run:
    run = Run(label)
    for _ in range(warmup):
        fetch()
    t0 = time.perf_counter()
    for _ in range(n):
        t1 = time.perf_counter()
        status = fetch()
        run.latencies.append(time.perf_counter() - t1)
        run.statuses[status] = run.statuses.get(status, 0) + 1
    run.seconds = time.perf_counter() - t0
    return run


def api_get(base: str, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def console_opener(base: str, username: str) -> Any | None:
    """A cookie-keeping opener logged in through the console's form; None when /servicedesk/ is absent."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        opener.open(base + "/servicedesk/", timeout=30).read()  # logged out: a redirect to /login
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    html = opener.open(base + "/login", timeout=30).read().decode()
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on /login"
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": m.group(1)}).encode()
    with opener.open(base + "/login", data=form, timeout=30) as r:
        assert "/login" not in r.geturl(), f"console login failed: landed on {r.geturl()}"
    return opener


def bulk_tickets(url: str, instance: Path, n: int, now: dt.datetime) -> float:
    """Insert ``n`` tickets of the two years before ``now``; return the seconds it took."""
    rng = random.Random(20261)
    c = make_container(instance, url)
    try:
        t0 = time.perf_counter()
        with c.unit_of_work() as svc:
            policy = svc.policies.servicedesk()
            sites = svc.session.execute(select(Site.id, Site.tier)).all()
            by_tier: dict[str, list[int]] = {}
            for sid, tier in sites:
                by_tier.setdefault(tier, []).append(sid)
            users = [tuple(u) for u in svc.session.execute(select(User.id, User.username))]
            counters = {(p, y): last for p, y, last in svc.session.execute(
                select(TicketCounter.prefix, TicketCounter.year, TicketCounter.last))}
        tiers, tier_w = ["ministry", "province", "city", "county"], [3, 22, 40, 35]
        types = [TicketType.INCIDENT, TicketType.SERVICE_REQUEST, TicketType.PROBLEM, TicketType.CHANGE]
        type_w = [70, 20, 5, 5]
        cats = ["network_fault", "cloud_resource", "account_access", "security_incident", "consultation", "other"]
        cat_w = [35, 25, 15, 3, 12, 10]
        sources = ["web", "email", "api", "phone", "system"]
        teams = ["desk", "network-vendor-a", "network-vendor-b", "cloud-vendor", None]
        span = 730 * 86400
        created = sorted(now - dt.timedelta(seconds=rng.uniform(60, span)) for _ in range(n))
        titles = ["链路中断", "云主机无法登录", "账号解锁", "带宽不足", "咨询", "告警"]
        rows: list[dict[str, Any]] = []
        for at in created:
            ttype = rng.choices(types, type_w)[0]
            prefix = PREFIX[ttype]
            year = at.astimezone(SHANGHAI).year
            counters[(prefix, year)] = counters.get((prefix, year), 0) + 1
            impact = rng.choices([1, 2, 3, 4], [2, 10, 60, 28])[0]
            urgency = rng.choices([1, 2, 3, 4], [3, 15, 55, 27])[0]
            priority = policy.priority(impact, urgency)
            sla = policy.sla[priority]
            age_days = (now - at).total_seconds() / 86400
            if age_days > 14:
                status = rng.choices(["closed", "canceled", "resolved", "pending", "in_progress"], [88, 7, 3, 1, 1])[0]
            else:
                status = rng.choices(["new", "assigned", "in_progress", "pending", "resolved", "closed"],
                                     [15, 20, 30, 10, 15, 10])[0]
            responded = at + dt.timedelta(minutes=rng.uniform(2, sla.response_minutes * 1.3)) \
                if status != "new" else None
            resolved = responded + dt.timedelta(minutes=rng.uniform(10, sla.resolve_minutes * 1.5)) \
                if responded and status in ("resolved", "closed") else None
            closed = resolved + dt.timedelta(days=rng.uniform(0.5, 7)) if resolved and status == "closed" else None
            if closed and closed > now:
                closed, status = None, "resolved"
            if resolved and resolved > now:
                resolved, closed, status = None, None, "in_progress"
            requester = rng.choice(users) if rng.random() < 0.3 else None
            response_due = at + dt.timedelta(minutes=sla.response_minutes * (1 if sla.mode == "24x7" else 2.5))
            resolve_due = at + dt.timedelta(minutes=sla.resolve_minutes * (1 if sla.mode == "24x7" else 2.5))
            rows.append({
                "number": f"{prefix}-{year}-{counters[(prefix, year)]:06d}", "type": ttype.value, "status": status,
                "title": f"{rng.choice(titles)} #{len(rows)}",
                "description": "bulk benchmark ticket", "category": rng.choices(cats, cat_w)[0],
                "impact": impact, "urgency": urgency, "priority": priority,
                "requester_id": requester[0] if requester else None,
                "requester_name": requester[1] if requester else f"用户{rng.randint(1, 5000)}",
                "site_id": rng.choice(by_tier[rng.choices(tiers, tier_w)[0]]),
                "team": rng.choice(teams) if status != "new" else None, "assignee_id": None,
                "source": rng.choice(sources), "created_at": at, "updated_at": closed or resolved or responded or at,
                "responded_at": responded, "resolved_at": resolved, "closed_at": closed,
                "response_due": response_due, "resolve_due": resolve_due, "due_estimated": False,
                "response_breached": bool(responded and responded > response_due),
                "resolve_breached": bool(resolved and resolved > resolve_due), "version": 1,
            })
        with c.engine.begin() as conn:
            for i in range(0, len(rows), 10_000):
                conn.execute(insert(Ticket.__table__), rows[i:i + 10_000])
            for (prefix, year), last in counters.items():
                done = conn.execute(text("UPDATE ticket_counters SET last = :l WHERE prefix = :p AND year = :y"),
                                    {"l": last, "p": prefix, "y": year}).rowcount
                if not done:
                    conn.execute(insert(TicketCounter.__table__), {"prefix": prefix, "year": year, "last": last})
        with c.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE tickets" if c.engine.dialect.name == "postgresql" else "ANALYZE"))
        return time.perf_counter() - t0
    finally:
        c.dispose()


def row(run: Run, baseline: Run | None = None) -> str:
    bad = {s: k for s, k in run.statuses.items() if s >= 400 or s == 0}
    extra = f"  x{run.pct(50) / baseline.pct(50):.1f} p50 of baseline" if baseline else ""
    return (f"{run.label:<44}{len(run.latencies):>7}{run.pct(50):>9.1f}{run.pct(95):>9.1f}{run.throughput:>10.1f}"
            f"   {'errors ' + str(bad) if bad else 'all ok'}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", nargs="?", default=DEFAULT_URL)
    ap.add_argument("--requests", type=int, default=2000, help="requests per endpoint in the intake runs")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--bulk", type=int, default=BULK)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ticket-bench-") as tmp_s:
        tmp = Path(tmp_s)
        pg = args.url.startswith("postgresql")
        url = recreate_pg_database(args.url, DB_NAME) if pg else f"sqlite:///{tmp / 'bench.db'}"
        instance = tmp / "instance"
        env = env_for(instance, url)
        proc = None
        log = tmp / "serve.log"
        try:
            cli(env, "db", "upgrade")
            cli(env, "sites", "seed-national")
            c = make_container(instance, url)
            try:
                with c.unit_of_work() as svc:
                    agent, _ = svc.auth.create_user(ACTOR, username="bench.desk", password=PASSWORD,
                                                    role="desk_agent", site_code="000000")
                    desk_token = svc.auth.create_token(ACTOR, agent, "bench")[1]
                    staff = []
                    for code in PROVINCES:
                        u, _ = svc.auth.create_user(ACTOR, username=f"bench.{code}", password=PASSWORD,
                                                    role="provincial_staff", site_code=code)
                        staff.append(svc.auth.create_token(ACTOR, u, "bench")[1])
            finally:
                c.dispose()
            port = free_port()
            proc = start(env, "serve", "--port", str(port), log=log)
            base = f"http://127.0.0.1:{port}"
            wait_health(base, proc, log)
            threads = load_settings(environ=env).threads
            print(f"database: {url.split('://')[0]} ({DB_NAME if pg else 'temporary SQLite file'}); "
                  f"waitress threads: {threads}; {args.clients} clients, {args.requests} requests per run")

            # Intake -----------------------------------------------------------------------------
            load("warm-up", port, "GET", "/api/v1/me", staff, requests=200, clients=args.clients)
            me = load("GET /api/v1/me (baseline)", port, "GET", "/api/v1/me", staff,
                      requests=args.requests, clients=args.clients)

            def ticket(i: int, k: int) -> dict[str, Any]:
                return {"title": f"压测工单 {i}", "category": "network_fault", "impact": 1 + i % 4,
                        "urgency": 1 + (i // 4) % 4, "description": f"client {k}"}

            post = load("POST /api/v1/tickets", port, "POST", "/api/v1/tickets", staff,
                        requests=args.requests, clients=args.clients, body=ticket)
            print(f"\n{'intake':<44}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>10}")
            print(row(me))
            print(row(post, me))
            numbers = [str(b["number"]) for b in post.bodies]
            year = dt.datetime.now(SHANGHAI).year
            want = [f"INC-{year}-{k:06d}" for k in range(1, post.statuses.get(201, 0) + 1)]
            print(f"ticket numbers: {len(set(numbers))} unique of {len(numbers)} created; "
                  f"contiguous INC-{year}-000001..: {'yes' if sorted(numbers) == want else 'NO'}")

            # The list over 100,000 tickets ------------------------------------------------------
            now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)  # older than the intake tickets
            secs = bulk_tickets(url, instance, args.bulk, now)
            status, page = api_get(base, "/api/v1/tickets?limit=1", desk_token)
            total = page["total"] if status == 200 else f"error {status}"
            print(f"\n{args.bulk:,} tickets inserted in bulk in {secs:.1f} s; the desk now sees {total} tickets")

            def getter(path: str, token: str) -> Any:
                return lambda: api_get(base, path, token)[0]

            runs = [sequential("GET /api/v1/tickets?limit=50 (desk agent)", getter("/api/v1/tickets?limit=50",
                                                                                   desk_token)),
                    sequential("  ...&status=open (desk agent)", getter("/api/v1/tickets?limit=50&status=open",
                                                                        desk_token)),
                    sequential("  ...as provincial staff (130000 subtree)", getter("/api/v1/tickets?limit=50",
                                                                                   staff[2])),
                    sequential("GET /api/v1/me (baseline, same moment)", getter("/api/v1/me", desk_token))]
            opener = console_opener(base, "bench.desk")
            if opener is not None:
                def page_status(path: str) -> Any:
                    def f() -> int:
                        with opener.open(base + path, timeout=60) as r:
                            r.read()
                            return int(r.status)
                    return f

                runs.insert(3, sequential("console /servicedesk/ (desk agent)", page_status("/servicedesk/")))
                runs.insert(4, sequential("console /servicedesk/?status=open", page_status("/servicedesk/"
                                                                                         "?status=open")))
            print(f"\n{'ticket list, 200 sequential requests':<44}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>10}")
            for r in runs:
                verdict = "met" if r.pct(95) <= TARGET_MS else "NOT met"
                print(row(r) + ("" if "baseline" in r.label else f"   target p95 ≤ {TARGET_MS:.0f} ms: {verdict}"))
            if opener is None:
                print("console /servicedesk/ not found (404): only the API list was measured")
        finally:
            if proc is not None:
                stop(proc)
            if pg:
                drop_pg_database(url)
        server_log = log.read_text(errors="replace") if log.exists() else ""
        problems = [ln for ln in server_log.splitlines() if "Traceback" in ln or " ERROR " in ln]
        print(f"\nserver log: {len(problems)} error lines" + (":" if problems else ""))
        for ln in problems[:10]:
            print("  " + ln)
        if problems:
            tail = server_log[server_log.find("Traceback"):][:3000] if "Traceback" in server_log else ""
            print(tail)


if __name__ == "__main__":
    main()
