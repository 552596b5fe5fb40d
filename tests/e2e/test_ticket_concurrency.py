"""200 tickets filed at once through the real server (waitress) on PostgreSQL: every one accepted, numbered
once, with no gap, in its requester's province, and the audit chain still whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKEND, PASSWORD, TEST_ACTOR, drop_pg_database, fresh_database_url, make_container
from tests.e2e.peers import cli, env_for, free_port, start, stop, wait_health

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(BACKEND != "postgresql", reason="runs in the PostgreSQL pass (set ECOCLOUD_TEST_DATABASE_URL)"),
]

#: Ten provinces of the national tree (seed-national) and one provincial staff member in each.
PROVINCES = ["110000", "120000", "130000", "140000", "150000", "210000", "310000", "320000", "440000", "650000"]
REQUESTS = 200
CLIENT_THREADS = 80
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def call(base: str, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")[:500]


def test_200_tickets_filed_at_once_get_200_contiguous_numbers(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path, f"ecocloud_e2e_tickets_{os.getpid()}")
    instance = tmp_path / "instance"
    env = env_for(instance, url)
    log = tmp_path / "serve.log"
    proc = None
    try:
        cli(env, "db", "upgrade")
        cli(env, "sites", "seed-national")
        cli(env, "users", "create", "--username", "desk.agent", "--role", "desk_agent", "--site", "000000",
            "--password", PASSWORD)
        desk_token = json.loads(cli(env, "tokens", "create", "--username", "desk.agent", "--name", "e2e",
                                    "--json"))["token"]
        tokens: dict[str, str] = {}  # username -> token
        home: dict[str, str] = {}  # username -> province code
        c = make_container(instance, url)
        try:
            with c.unit_of_work() as svc:
                for code in PROVINCES:
                    user, _secret = svc.auth.create_user(TEST_ACTOR, username=f"staff.{code}", password=PASSWORD,
                                                         role="provincial_staff", site_code=code)
                    _t, tokens[user.username] = svc.auth.create_token(TEST_ACTOR, user, "e2e")
                    home[user.username] = code
        finally:
            c.dispose()

        port = free_port()
        proc = start(env, "serve", "--port", str(port), log=log)
        base = f"http://127.0.0.1:{port}"
        wait_health(base, proc, log)
        users = sorted(tokens)
        year = dt.datetime.now(SHANGHAI).year
        gate = threading.Barrier(CLIENT_THREADS)

        def file(i: int) -> tuple[int, str, Any]:
            if i < CLIENT_THREADS:  # the first request of every client thread leaves at the same moment
                gate.wait(timeout=30)
            user = users[i % len(users)]
            status, body = call(base, "POST", "/api/v1/tickets", tokens[user],
                                {"title": f"并发工单 {i:03d}：链路中断", "category": "network_fault",
                                 "description": f"request {i} from {user}"})
            return status, user, body

        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            results = list(pool.map(file, range(REQUESTS)))
        elapsed = time.monotonic() - t0
        print(f"{REQUESTS} tickets filed by {CLIENT_THREADS} client threads in {elapsed:.2f} s")

        statuses = [s for s, _u, _b in results]
        assert not [s for s in statuses if s >= 500], [r for r in results if r[0] >= 500][:3]
        assert statuses == [201] * REQUESTS, [r for r in results if r[0] != 201][:3]
        numbers = [b["number"] for _s, _u, b in results]
        assert len(set(numbers)) == REQUESTS
        assert sorted(numbers) == [f"INC-{year}-{n:06d}" for n in range(1, REQUESTS + 1)]
        for i, (_s, user, body) in enumerate(results):
            assert (body["requester"], body["site"], body["title"]) == (user, home[user], f"并发工单 {i:03d}：链路中断")
            assert body["status"] == "new" and body["type"] == "incident"

        # The desk sees all 200 and nothing more; each province sees its own 20 only.
        status, page = call(base, "GET", "/api/v1/tickets?limit=1000", desk_token)
        assert status == 200
        assert page["total"] == REQUESTS
        assert sorted(t["number"] for t in page["items"]) == sorted(numbers)
        by_number = {b["number"]: b for _s, _u, b in results}
        assert all(t["title"] == by_number[t["number"]]["title"] for t in page["items"])
        for user in users:
            status, mine = call(base, "GET", "/api/v1/tickets?limit=1000", tokens[user])
            assert status == 200
            assert mine["total"] == REQUESTS // len(users)
            assert {t["site"] for t in mine["items"]} == {home[user]}

        # Every creation audited once, the chain intact after concurrent appends.
        audit = json.loads(cli(env, "audit", "verify", "--json"))
        assert audit["ok"], audit
        c = make_container(instance, url)
        try:
            from sqlalchemy import func, select

            from ecocloud_ops.audit.models import AuditEntry
            from ecocloud_ops.servicedesk.models import TicketCounter

            with c.unit_of_work() as svc:
                created = svc.session.execute(select(func.count()).select_from(AuditEntry)
                                              .where(AuditEntry.action == "ticket.create")).scalar_one()
                last = svc.session.execute(select(TicketCounter.last).where(TicketCounter.prefix == "INC",
                                                                            TicketCounter.year == year)).scalar_one()
        finally:
            c.dispose()
        assert (created, last) == (REQUESTS, REQUESTS)
    finally:
        if proc is not None:
            stop(proc)
        if BACKEND == "postgresql":
            drop_pg_database(url)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
