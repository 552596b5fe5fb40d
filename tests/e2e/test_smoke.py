"""The default product end to end: ``ecocloud-ops demo`` on SQLite, worker and console at once."""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pyotp
import pytest

from tests.e2e.peers import cli, env_for, free_port, start, stop, wait_health

pytestmark = pytest.mark.smoke


class Browser:
    """Cookies and CSRF tokens, like a person's browser without the rendering."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path: str, form_page: str, data: dict[str, str]) -> tuple[int, str, str]:
        _s, html = self.get(form_page)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token, form_page
        body = urllib.parse.urlencode(data | {"csrf_token": token.group(1)}).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=30) as r:
                return r.status, r.geturl(), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.geturl(), e.read().decode()


def test_demo_serves_the_console_and_runs_jobs_while_both_write(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = env_for(instance, "")  # the embedded default: SQLite in the instance folder
    env.pop("ECOCLOUD_DATABASE_URL")
    port = free_port()
    log = tmp_path / "demo.log"
    # The demo network has its own lab test; here the console and the worker are what is checked.
    proc = start(env, "demo", "--port", str(port), "--no-network", log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(base, proc, log, worker=True, timeout=180)
        assert health["status"] == "ok"
        out = log.read_text()
        password = re.search(r"admin / (\S+)", out)
        secret = re.search(r"second factor \(TOTP\) key: (\S+)", out)
        assert password and secret, out
        assert (instance / "ecocloud.db").exists()

        b = Browser(base)
        status, url, html = b.post("/login", "/login", {"username": "admin", "password": password.group(1)})
        assert url.endswith("/login/totp"), (status, url)
        status, url, html = b.post("/login/totp", "/login/totp", {"code": pyotp.TOTP(secret.group(1)).now()})
        assert status == 200 and 'id="count-county">2843<' in html and "worker-warning" not in html

        # Console writes (failed logins from another client) while the worker writes the job.
        status, url, html = b.post("/jobs/start", "/jobs", {"kind": "system.sleep"})
        job_id = int(url.rstrip("/").split("/")[-1])
        stop_flag = threading.Event()
        failures: list[int] = []

        def hammer() -> None:
            other = Browser(base)
            while not stop_flag.is_set():
                s, _u, _h = other.post("/login", "/login", {"username": "nobody", "password": "x"})
                if s != 401:
                    failures.append(s)

        t = threading.Thread(target=hammer)
        t.start()
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            _s, body = b.get(f"/jobs/{job_id}/status")
            state = json.loads(body)["state"]
            if state in ("succeeded", "failed", "canceled"):
                break
            time.sleep(0.2)
        stop_flag.set()
        t.join()
        assert state == "succeeded" and not failures
        status, _body = b.get("/jobs/" + str(job_id))
        assert status == 200
    finally:
        stop(proc)
    verify = cli(env, "audit", "verify", "--json")
    result = json.loads(verify)
    assert result["ok"] and result["checked"] > 10, result
