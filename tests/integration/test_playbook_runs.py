"""Playbook runs through ansible-runner against this machine (ansible_connection=local): events in
order and complete, failures, timeouts, cancel, variables checked before running and kept as data,
the worker dying mid-run, the API and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.automation.models import PlaybookEvent, PlaybookRun
from ecocloud_ops.automation.runner import RUN_MARKER, extravars_yaml
from ecocloud_ops.automation.service import PlaybookService
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker
from tests.conftest import Account, api_token

OPS = Actor("r.ops", "network_ops", channel="api")
EXE = str(Path(sys.executable).with_name("ecocloud-ops"))
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


@pytest.fixture
def ops(make_user: Callable[..., Account], container: Container) -> dict[str, str]:
    """Bearer headers of a national operator (jobs.manage)."""
    return {"Authorization": f"Bearer {api_token(container, make_user('r.ops', 'network_ops'))}"}


@pytest.fixture(autouse=True)
def hostile_ansible_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user configuration that would break every run if it were read: runs must use only their own."""
    cfg = tmp_path / "user-ansible.cfg"
    cfg.write_text("[defaults]\nstrategy = no_such_strategy\nstdout_callback = no_such_callback\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg))


def start(container: Container, playbook: str, extra_vars: dict[str, Any] | None = None, **kw: Any) -> tuple[int, int]:
    with container.unit_of_work() as svc:
        run = PlaybookService.of(svc).start(OPS, playbook, extra_vars, **kw)
        return run.id, run.job_id


def execute(container: Container, job_id: int) -> None:
    """What the worker does with the run's job, in this thread."""
    Worker(container, name="test-worker:1").run_job_now(job_id)


def load(container: Container, run_id: int) -> tuple[PlaybookRun, list[PlaybookEvent], Job]:
    with container.unit_of_work() as svc:
        run = svc.session.get(PlaybookRun, run_id)
        assert run is not None
        events = list(svc.session.execute(select(PlaybookEvent).where(PlaybookEvent.run_id == run_id)
                                          .order_by(PlaybookEvent.seq)).scalars())
        job = svc.session.get(Job, run.job_id)
        assert job is not None
        return run, events, job


def wait_status(container: Container, run_id: int, statuses: set[str], timeout: float = 20) -> PlaybookRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = load(container, run_id)[0]
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {run.status}")


def run_processes(container: Container, run_id: int) -> list[int]:
    """Local processes still carrying the run's marker."""
    marker = f"{RUN_MARKER}={(container.settings.instance_dir / 'runs' / str(run_id)).resolve()}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def counts(container: Container) -> tuple[int, int]:
    with container.unit_of_work() as svc:
        return (int(svc.session.execute(select(func.count()).select_from(PlaybookRun)).scalar_one()),
                int(svc.session.execute(select(func.count()).select_from(Job)).scalar_one()))


# Catalog and validation ---------------------------------------------------------------------------
def test_the_catalog_lists_runnable_playbooks_with_their_schemas(client: FlaskClient, ops: dict[str, str]) -> None:
    r = client.get("/api/v1/playbooks", headers=ops)
    assert r.status_code == 200
    books = {p["name"]: p for p in r.json["items"]}
    # The included task file has no schema: it is not a playbook of its own.
    assert {"ping", "sleep", "many_tasks", "fail"} <= set(books) and "many_tasks_step" not in books
    assert books["sleep"]["variables"]["seconds"] == {
        "type": "int", "required": True, "default": None, "min": 1, "max": 86400, "description": "等待的秒数"}
    assert books["ping"]["variables"]["tag"]["pattern"] == "^[A-Za-z0-9_-]{1,32}$"
    assert books["fail"]["variables"]["reason"]["choices"] == ["test", "disk_full", "backup_missing"]


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"playbook": "sleep", "extra_vars": {"seconds": "5"}}, "extra_vars.seconds", 422),  # JSON types are strict
    ({"playbook": "sleep", "extra_vars": {"seconds": "abc"}}, "extra_vars.seconds", 422),
    ({"playbook": "sleep", "extra_vars": {"seconds": True}}, "extra_vars.seconds", 422),
    ({"playbook": "sleep", "extra_vars": {"seconds": 0}}, "extra_vars.seconds", 422),
    ({"playbook": "sleep", "extra_vars": {}}, "extra_vars.seconds", 422),  # required
    ({"playbook": "sleep", "extra_vars": {"seconds": 1, "cmd": "id"}}, "extra_vars.cmd", 422),  # unknown
    ({"playbook": "ping", "extra_vars": {"ansible_connection": "ssh"}}, "extra_vars.ansible_connection", 422),
    ({"playbook": "ping", "extra_vars": {"tag": "bad tag; id"}}, "extra_vars.tag", 422),  # pattern
    ({"playbook": "ping", "extra_vars": {"echo": "yes"}}, "extra_vars.echo", 422),
    ({"playbook": "ping", "extra_vars": {"message": "x" * 501}}, "extra_vars.message", 422),
    ({"playbook": "fail", "extra_vars": {"reason": "other"}}, "extra_vars.reason", 422),  # choice
    ({"playbook": "ping", "limit": "@/etc/passwd"}, "limit", 422),
    ({"playbook": "ping", "limit": "--become"}, "limit", 422),
    ({"playbook": "ping", "limit": "{{ lookup('pipe','id') }}"}, "limit", 422),
    ({"playbook": "ping", "inventory": "../../etc/hosts"}, "inventory", 422),
    ({"playbook": "ping", "timeout": 0}, "timeout", 422),
    ({"playbook": "../etc/passwd"}, "playbook", 422),  # path traversal
    ({"playbook": "/etc/passwd"}, "playbook", 422),
    ({"playbook": "tasks/many_tasks_step"}, "playbook", 422),
    ({"playbook": "ping.yml"}, "playbook", 422),
    ({"playbook": "many_tasks_step"}, None, 404),  # a file without a schema is no playbook
    ({"playbook": "no_such_book"}, None, 404),
    ({"playbook": "ping", "inventory": "no_such_inventory"}, None, 404),
])
def test_bad_requests_are_refused_before_anything_runs(client: FlaskClient, ops: dict[str, str],
                                                       container: Container, body: dict[str, Any],
                                                       field: str | None, status: int) -> None:
    r = client.post("/api/v1/playbook-runs", json=body, headers=ops)
    assert r.status_code == status, r.json
    if field is not None:
        assert field in {d["field"] for d in r.json["error"]["details"]}, r.json
    assert counts(container) == (0, 0), "no run and no job were recorded"
    assert not (container.settings.instance_dir / "runs").exists(), "nothing was prepared on disk"


def test_defaults_fill_in_and_types_are_converted_from_the_command_line(container: Container,
                                                                         small_tree: None) -> None:
    with container.unit_of_work() as svc:
        pb = PlaybookService.of(svc)
        run = pb.start(OPS, "ping", {"echo": "no", "tag": "t-1"}, from_text=True)
        assert run.extra_vars == {"message": "pong", "tag": "t-1", "echo": False}
        assert run.status == "pending" and run.timeout_seconds == 300 and "ansible_connection=local" in run.inventory
        run2 = pb.start(OPS, "sleep", {"seconds": "7"}, from_text=True, timeout=9)
        assert run2.extra_vars == {"seconds": 7} and run2.timeout_seconds == 9


def test_extra_variables_are_written_as_untemplated_data() -> None:
    text = extravars_yaml({"message": "{{ lookup('pipe', 'id') }}; rm -rf /", "seconds": 5, "echo": True})
    assert text == ("echo: true\n"
                    "message: !unsafe \"{{ lookup('pipe', 'id') }}; rm -rf /\"\n"
                    "seconds: 5\n")


# Runs -------------------------------------------------------------------------------------------
def test_a_successful_run_keeps_every_event_in_order_and_its_output(client: FlaskClient, ops: dict[str, str],
                                                                    container: Container, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    message = (f"; rm -rf {tmp_path}/nothing $(touch {marker}) `touch {marker}` "
               f"{{{{ lookup('pipe', 'touch {marker}') }}}} | & > {marker}")
    r = client.post("/api/v1/playbook-runs", json={"playbook": "ping", "extra_vars": {"message": message}},
                    headers=ops)
    assert r.status_code == 202, r.json
    assert r.json["status"] == "pending" and r.json["started_by"] == "r.ops" and r.json["rc"] is None
    run_id = r.json["id"]
    execute(container, r.json["job_id"])

    r = client.get(f"/api/v1/playbook-runs/{run_id}", headers=ops)
    body = r.json
    assert body["status"] == "successful" and body["rc"] == 0 and body["status_reason"] is None
    assert body["duration_seconds"] > 0 and body["started_at"] and body["finished_at"]
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and body["event_count"] == len(seqs)
    names = [e["event"] for e in body["events"]]
    assert names[0] == "playbook_on_start" and names[-1] == "playbook_on_stats"
    tasks = [e["task"] for e in body["events"] if e["event"] == "playbook_on_task_start"]
    assert tasks == ["Ping", "Show the message", "Echo the message on the host (argv, no shell)",
                     "Show what the host echoed"]
    oks = [e for e in body["events"] if e["event"] == "runner_on_ok"]
    assert len(oks) == 4 and all(e["host"] == "localhost" and e["ok"] and not e["failed"] for e in oks)
    # The value reached the playbook and the host's echo verbatim, as data: nothing of it ran.
    assert f"echoed={message}" in body["stdout"] and f"message={message} tag=ops" in body["stdout"]
    assert not marker.exists()
    assert "PLAY RECAP" in body["stdout"] and "failed=0" in body["stdout"] and "\r" not in body["stdout"]
    # A live view pages with 'after'.
    page = client.get(f"/api/v1/playbook-runs/{run_id}?after=3&limit=2", headers=ops).json
    assert [e["seq"] for e in page["events"]] == [4, 5] and page["next_after"] == 5 and page["more"]
    job = load(container, run_id)[2]
    assert job.state == "succeeded" and job.result and job.result["status"] == "successful"
    assert not (container.settings.instance_dir / "runs" / str(run_id)).exists(), "the private data dir is removed"


def test_a_failing_task_fails_the_run(container: Container, small_tree: None) -> None:
    # An inventory generated as YAML (as the DR lab's will be), with a host of another name.
    run_id, job_id = start(container, "fail", {"reason": "disk_full"},
                           inventory={"all": {"hosts": {"db-primary": LOCAL}}})
    execute(container, job_id)
    run, events, job = load(container, run_id)
    assert "db-primary:" in run.inventory
    assert run.status == "failed" and run.rc == 2 and "host failed" in (run.status_reason or "")
    failed = [e for e in events if e.failed]
    assert [(e.event, e.task, e.host) for e in failed] == [("runner_on_failed", "Fail", "db-primary")]
    assert "failed on purpose: disk_full" in failed[0].stdout
    assert "Never reached" not in {e.task for e in events}
    assert "failed=1" in run.stdout
    assert job.state == "failed" and f"playbook run {run_id} failed" in (job.error or "")


def test_hundreds_of_tasks_every_event_stored_once_in_counter_order(container: Container, small_tree: None) -> None:
    run_id, job_id = start(container, "many_tasks", {"count": 300})
    execute(container, job_id)
    run, events, _ = load(container, run_id)
    assert run.status == "successful", run.status_reason
    seqs = [e.seq for e in events]
    # ansible-runner numbers its events 1, 2, 3…: no gap means none lost, the unique key none twice.
    assert seqs == list(range(1, len(seqs) + 1))
    steps = [e.task for e in events if e.event == "playbook_on_task_start" and (e.task or "").startswith("Step ")]
    assert steps == [f"Step {i}" for i in range(1, 301)], "300 tasks, in the order they ran"
    ok_steps = [e for e in events if e.event == "runner_on_ok" and (e.task or "").startswith("Step ")]
    assert len(ok_steps) == 300 and ok_steps[-1].stdout.endswith('"msg": "step 300 of 300"\n}')
    assert events[-1].event == "playbook_on_stats" and "ok=600" in events[-1].stdout
    ats = [e.at for e in events]
    assert ats == sorted(ats)


def test_events_the_database_refuses_wait_for_the_next_write(container: Container, small_tree: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    from ecocloud_ops.automation.runner import PlaybookExecution

    run_id, job_id = start(container, "ping")
    ex = PlaybookExecution(container, job_id)
    ex.run_id = run_id
    real, refuse = container.unit_of_work, [True]

    @contextmanager
    def flaky() -> Iterator[Any]:
        if refuse[0]:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        with real() as svc:
            yield svc

    monkeypatch.setattr(container, "unit_of_work", flaky)
    for n in (2, 1, 3, 2):  # out of order, and counter 2 delivered twice
        ex.on_event({"counter": n, "uuid": f"u-{n}", "event": "verbose", "stdout": f"line {n}\r\n",
                     "created": "2026-01-01T00:00:00+00:00"})
    ex.flush()  # refused: kept
    with pytest.raises(OperationalError):
        ex.flush(final=True)  # at the end of a run a refusal is an error, never a silent loss
    refuse[0] = False
    ex.flush()
    events = load(container, run_id)[1]
    assert [(e.seq, e.stdout) for e in events] == [(1, "line 1\n"), (2, "line 2\n"), (3, "line 3\n")]


def test_a_hanging_playbook_is_stopped_at_its_timeout(container: Container, small_tree: None) -> None:
    run_id, job_id = start(container, "sleep", {"seconds": 120}, timeout=2)
    t0 = time.monotonic()
    execute(container, job_id)
    elapsed = time.monotonic() - t0
    run, events, job = load(container, run_id)
    assert run.status == "timeout" and run.status_reason == "stopped after its time limit of 2 s"
    assert 2 <= elapsed < 10 and run.finished_at is not None
    assert "Sleep 120 seconds" in {e.task for e in events}
    assert run_processes(container, run_id) == [], "the sleeping module was killed with ansible-playbook"
    assert job.state == "failed" and "timeout" in (job.error or "")


@pytest.fixture
def worker(container: Container) -> Iterator[Worker]:
    w = Worker(container, name="test-worker:2")
    w.start()
    yield w
    w.stop()


def test_cancel_a_running_and_a_queued_run(client: FlaskClient, ops: dict[str, str], container: Container,
                                           worker: Worker) -> None:
    r = client.post("/api/v1/playbook-runs", json={"playbook": "sleep", "extra_vars": {"seconds": 120}},
                    headers=ops)
    run_id = r.json["id"]
    worker.poll_once()
    wait_status(container, run_id, {"running"})
    deadline = time.monotonic() + 15
    while "Sleep 120 seconds" not in {e.task for e in load(container, run_id)[1]}:  # the command is running
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = client.post(f"/api/v1/playbook-runs/{run_id}/cancel", headers=ops)
    assert r.status_code == 200 and r.json["status"] == "running"
    assert r.json["status_reason"] == "cancel requested by r.ops"
    t0 = time.monotonic()
    run = wait_status(container, run_id, {"canceled", "failed", "error", "successful"}, timeout=10)
    assert run.status == "canceled" and run.status_reason == "canceled by r.ops" and time.monotonic() - t0 < 5
    assert run_processes(container, run_id) == []
    deadline = time.monotonic() + 5
    while load(container, run_id)[2].state != "canceled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.post(f"/api/v1/playbook-runs/{run_id}/cancel", headers=ops).status_code == 409

    # A queued run is canceled at once and never runs.
    queued = client.post("/api/v1/playbook-runs", json={"playbook": "ping"}, headers=ops).json["id"]
    r = client.post(f"/api/v1/playbook-runs/{queued}/cancel", headers=ops)
    assert r.status_code == 200 and r.json["status"] == "canceled"
    assert r.json["status_reason"] == "canceled by r.ops before it started"
    assert worker.poll_once() is False, "nothing is left to claim"
    listed = client.get("/api/v1/playbook-runs?status=canceled", headers=ops).json
    assert listed["total"] == 2 and {i["id"] for i in listed["items"]} == {run_id, queued}
    assert client.get("/api/v1/playbook-runs?playbook=ping", headers=ops).json["total"] == 1
    assert client.get("/api/v1/playbook-runs?status=nonsense", headers=ops).status_code == 422


def test_a_run_whose_worker_died_is_marked_error_when_a_worker_starts(container: Container,
                                                                     small_tree: None) -> None:
    from ecocloud_ops.db import utcnow

    run_id, job_id = start(container, "sleep", {"seconds": 60})
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        run = svc.session.get(PlaybookRun, run_id)
        assert job is not None and run is not None
        job.state, job.worker, job.started_at = "running", "gone-host:4242", utcnow()
        run.status, run.started_at = "running", utcnow()
    # A run queued and then canceled through the generic jobs API is not left pending either.
    other_id, other_job = start(container, "ping")
    with container.unit_of_work() as svc:
        svc.jobs.cancel(OPS, svc.jobs.get(other_job, Scope.everything()))
    w = Worker(container, name="fresh:1")
    w.start()
    w.stop()
    run, _, job = load(container, run_id)
    assert run.status == "error" and job.state == "failed"
    assert run.status_reason == "the worker stopped while the run was running (gone-host:4242)"
    assert run.finished_at is not None and run.duration_seconds is not None
    assert load(container, other_id)[0].status == "canceled"


def test_an_unreadable_inventory_is_an_error_not_a_run_on_no_host(container: Container, small_tree: None,
                                                                   tmp_path: Path) -> None:
    bad = tmp_path / "hosts"
    bad.write_text("[web\nweb1 ansible_host=\n")
    run_id, job_id = start(container, "ping", inventory=bad)
    execute(container, job_id)
    run = load(container, run_id)[0]
    assert run.status == "error" and run.rc not in (0, None)
    assert (run.status_reason or "").startswith(f"ansible-playbook stopped without a recap (rc {run.rc})")
    assert "inventory" in run.stdout.lower()


def test_a_job_of_the_kind_started_without_a_run_fails_cleanly(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(OPS, "automation.playbook", {"playbook": "ping"}).id
    execute(container, job_id)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None and job.state == "failed" and "no playbook run belongs to this job" in (job.error or "")
    assert counts(container)[0] == 0


# CLI --------------------------------------------------------------------------------------------
def cli(container: Container, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOCLOUD_")}
    env.update(ECOCLOUD_INSTANCE_DIR=str(container.settings.instance_dir),
               ECOCLOUD_DATABASE_URL=container.settings.effective_database_url)
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_runs_follows_lists_shows_and_cancels(container: Container, small_tree: None, tmp_path: Path) -> None:
    p = cli(container, "jobs", "run", "ping", "-e", "message=a; id $(id)", "-e", "echo=yes", "--follow")
    assert p.returncode == 0, p.stderr
    # The events were printed as they came, like ansible-playbook's output, then the outcome.
    assert p.stdout.index("TASK [Ping]") < p.stdout.index("PLAY RECAP") < p.stdout.index("[successful] ping")
    assert "echoed=a; id $(id)" in p.stdout
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("[backup]\n" + "".join(
        f'{h} ansible_connection=local ansible_python_interpreter="{{{{ ansible_playbook_python }}}}"\n'
        for h in ("bk1", "bk2")))
    p = cli(container, "jobs", "run", "fail", "--follow", "-e", "reason=backup_missing", "--inventory", str(hosts),
            "--limit", "bk2")
    assert p.returncode == 2 and "[failed] fail" in p.stdout and "fatal: [bk2]" in p.stdout
    assert "failed on purpose: backup_missing" in p.stdout and "bk1" not in p.stdout
    p = cli(container, "jobs", "run", "sleep", "-e", "seconds=soon")
    assert p.returncode == 1 and "seconds: must be a whole number" in p.stderr
    p = cli(container, "jobs", "run", "../etc/passwd")
    assert p.returncode == 1 and "invalid playbook name" in p.stderr
    assert counts(container)[0] == 2, "refused runs left nothing"
    p = cli(container, "jobs", "run", "sleep", "-e", "seconds=30", "--json")
    assert p.returncode == 0, p.stderr
    import json

    queued = json.loads(p.stdout)
    assert queued["status"] == "pending" and queued["extra_vars"] == {"seconds": 30}
    listed = json.loads(cli(container, "jobs", "list", "--json").stdout)
    assert [(i["playbook"], i["status"]) for i in listed["items"]] == [
        ("sleep", "pending"), ("fail", "failed"), ("ping", "successful")]
    shown = json.loads(cli(container, "jobs", "show", str(listed["items"][2]["id"]), "--json").stdout)
    assert shown["rc"] == 0 and shown["started_by"].startswith("cli:") and shown["events"][0]["seq"] == 1
    p = cli(container, "jobs", "cancel", str(queued["id"]))
    assert p.returncode == 0 and "canceled" in p.stdout
    p = cli(container, "jobs", "show", str(listed["items"][1]["id"]))
    assert p.returncode == 0 and "[failed] fail" in p.stdout and "PLAY RECAP" in p.stdout
    with container.unit_of_work() as svc:
        jobs = list(svc.session.execute(select(Job).order_by(Job.id)).scalars())
        # The foreground runs were claimed by the CLI process, never queued for a worker.
        assert [j.state for j in jobs] == ["succeeded", "failed", "canceled"]
        assert jobs[0].worker and jobs[0].worker.startswith("cli:")


def test_a_provincial_user_sees_only_the_runs_of_their_province(client: FlaskClient, container: Container,
                                                               make_user: Callable[..., Account]) -> None:
    hebei = {"Authorization": f"Bearer {api_token(container, make_user('p.hb', 'provincial_staff', '130000'))}"}
    national, _ = start(container, "ping")
    local, _ = start(container, "ping", site_code="130100")
    assert [i["id"] for i in client.get("/api/v1/playbook-runs", headers=hebei).json["items"]] == [local]
    assert client.get(f"/api/v1/playbook-runs/{national}", headers=hebei).status_code == 404
    assert client.post("/api/v1/playbook-runs", json={"playbook": "ping"}, headers=hebei).status_code == 403



def test_console_history_start_form_and_live_view(app: Any, container: Container,
                                                  make_user: Callable[..., Account]) -> None:
    from tests.conftest import csrf_from, login

    operator = make_user("run.console", "network_ops", "000000")
    c = app.test_client()
    login(c, operator, container)
    form = c.get("/automation/run?playbook=ping").get_data(as_text=True)
    assert 'id="run-form"' in form
    token = csrf_from(c, "/automation/run?playbook=ping")
    r = c.post("/automation/run", data={"csrf_token": token, "playbook": "ping"})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    run_id = int(r.location.rstrip("/").rsplit("/", 1)[1])
    with container.unit_of_work() as svc:
        job_id = svc.session.get(PlaybookRun, run_id).job_id  # type: ignore[union-attr]
    live = c.get(f"/automation/runs/{run_id}/events?after=0").json
    assert live["run"]["status"] == "pending" and live["events"] == []
    execute(container, job_id)
    done = c.get(f"/automation/runs/{run_id}/events?after=0").json
    assert done["run"]["status"] == "successful" and done["events"]
    seqs = [e["seq"] for e in done["events"]]
    assert seqs == sorted(seqs)
    later = c.get(f"/automation/runs/{run_id}/events?after={seqs[-2]}").json["events"]
    assert [e["seq"] for e in later] == seqs[-1:], "the live view asks only for what it has not seen"
    page = c.get(f"/automation/runs/{run_id}").get_data(as_text=True)
    assert "successful" in page and 'id="run-stdout"' in page
    assert f'href="/automation/runs/{run_id}"' in c.get("/automation/?status=successful").get_data(as_text=True)
    bad = c.post("/automation/run", data={"csrf_token": token, "playbook": "sleep", "var_seconds": "abc"})
    assert bad.status_code == 422
