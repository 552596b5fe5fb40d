"""Executes a playbook run through ansible-runner, inside the worker (job kind ``automation.playbook``).

* Extra variables are written by us to ``env/extravars`` as YAML with every string tagged ``!unsafe``:
  Ansible reads them with ``-e @file`` and never templates them, so a value like
  ``{{ lookup('pipe', 'id') }}`` or ``; rm -rf /`` stays data; they are never on a command line.
* The event handler stores ansible-runner's events in batches (short transactions, in counter order,
  each counter once); the status handler marks the run running; the cancel callback looks at the
  job's cancel flag at most twice a second; ansible-runner enforces the timeout.
* ansible-playbook reads only our ``ansible.cfg`` (``ANSIBLE_CONFIG``), never the user's or /etc's.
* The run's private data directory ``<instance>/runs/<id>`` is removed at the end: events and
  output are in the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import insert, select

from ..db import utcnow
from ..jobs.models import Job
from ..jobs.runner import JobCanceled
from .catalog import Catalog
from .models import STDOUT_CAP, PlaybookEvent, PlaybookRun, RunStatus

if TYPE_CHECKING:
    from ..bootstrap import Container
    from ..jobs.runner import JobContext

log = logging.getLogger(__name__)
#: Events are written when this many are waiting, or when the oldest waited FLUSH_SECONDS.
BATCH_SIZE = 200
FLUSH_SECONDS = 0.5
CANCEL_POLL_SECONDS = 0.5
#: A run whose events the database refuses this long is stopped (``error``): events are never dropped.
FLUSH_GIVE_UP_SECONDS = 60.0
EVENT_STDOUT_CAP = 64 * 1024
OK_EVENTS = {"runner_on_ok", "runner_item_on_ok", "runner_on_async_ok"}
FAILED_EVENTS = {"runner_on_failed", "runner_item_on_failed", "runner_on_async_failed"}


class _Unsafe(str):
    """A string Ansible must never template (YAML tag ``!unsafe``)."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


_ExtraVarsDumper.add_representer(
    _Unsafe, lambda dumper, data: dumper.represent_scalar("!unsafe", str(data), style='"'))


def extravars_yaml(values: dict[str, Any]) -> str:
    """The ``env/extravars`` file: every string value (also inside lists and mappings) ``!unsafe``."""
    def wrap(v: Any) -> Any:
        if isinstance(v, str):
            return _Unsafe(v)
        if isinstance(v, list):
            return [wrap(x) for x in v]
        if isinstance(v, dict):
            return {k: wrap(x) for k, x in v.items()}
        return v

    return yaml.dump({k: wrap(v) for k, v in values.items()}, Dumper=_ExtraVarsDumper, allow_unicode=True,
                     sort_keys=True, width=1 << 20)


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value)
            return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    return utcnow()


def event_row(run_id: int, e: dict[str, Any]) -> dict[str, Any]:
    """A database row of one ansible-runner event."""
    data = e.get("event_data") if isinstance(e.get("event_data"), dict) else {}
    assert isinstance(data, dict)
    res = data.get("res") if isinstance(data.get("res"), dict) else {}
    assert isinstance(res, dict)
    name = str(e.get("event") or "")
    host = data.get("host") or data.get("remote_addr")

    def text(v: Any, n: int) -> str | None:
        return None if v in (None, "") else str(v)[:n]

    return {"run_id": run_id, "seq": int(e["counter"]), "uuid": str(e.get("uuid") or "")[:36], "event": name[:64],
            "play": text(data.get("play"), 500), "task": text(data.get("task"), 500), "host": text(host, 255),
            "ok": name in OK_EVENTS, "changed": bool(res.get("changed")) if name in OK_EVENTS else False,
            "failed": name in FAILED_EVENTS, "unreachable": name == "runner_on_unreachable",
            "at": _parse_time(e.get("created")), "stdout": _clean(str(e.get("stdout") or ""))[:EVENT_STDOUT_CAP]}


def ansible_env(run_dir: Path) -> dict[str, str]:
    """Environment of ansible-playbook (on top of the worker's, which ansible-runner always copies):
    our ansible.cfg only, no colours, the platform's ansible first on PATH, the run's marker (see
    :func:`kill_run_processes`), and the platform's own ``ECOCLOUD_*`` settings (database URL, keys)
    blanked so no playbook can read them."""
    env = {k: "" for k in os.environ if k.startswith("ECOCLOUD_")}
    env |= {"ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            RUN_MARKER: str(run_dir)}
    return env


#: Environment variable every process of a run inherits (ansible-playbook, its workers, local modules).
RUN_MARKER = "ECOCLOUDOPS_PLAYBOOK_RUN"


def kill_run_processes(run_dir: Path) -> int:
    """SIGKILL every local process of a run; returns how many.

    ansible-runner stops a canceled or timed-out run by killing ansible-playbook's process group, but
    Ansible's worker processes call ``setsid()``, so they and the modules they started (a ``sleep``,
    a backup) would run on. They all carry the run's marker in their environment, even once orphaned."""
    marker = f"{RUN_MARKER}={run_dir}".encode()
    killed = 0
    if not Path("/proc").is_dir():  # not Linux: ansible-runner's process-group kill is all there is
        return 0
    for _ in range(5):  # a process may fork while we look; look again until none is left
        found = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                os.kill(int(entry.name), signal.SIGKILL)
                found += 1
            except (OSError, ValueError):  # gone, or not ours to read
                continue
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed


ANSIBLE_CFG = """\
# Written by EcoCloud Ops for one playbook run; ansible-playbook reads no other configuration file.
[defaults]
retry_files_enabled = False
nocolor = True
interpreter_python = auto_silent
local_tmp = {tmp}

[inventory]
# An inventory that cannot be parsed stops the run (an error), instead of running on no host.
unparsed_is_failed = True
"""


class PlaybookExecution:
    """One run of one playbook. ``execute`` returns the final status; it never raises for a run that
    went wrong (that is recorded on the run), only for a run that cannot be found or started twice."""

    def __init__(self, container: Container, job_id: int, job_ctx: JobContext | None = None,
                 catalog: Catalog | None = None) -> None:
        self.container = container
        self.job_id = job_id
        self.ctx = job_ctx
        self.catalog = catalog or Catalog()
        self._buffer: list[dict[str, Any]] = []
        self._seen: set[int] = set()
        self._first_buffered = 0.0
        self._last_cancel_check = 0.0
        self._cancel = False
        self._internal_error: str | None = None
        self._recap = False
        self._tasks = 0
        self._last_task = ""
        self._started_at: dt.datetime | None = None
        self._failing_since: float | None = None
        self._lock = threading.Lock()
        self.run_id = 0

    # Handlers (called by ansible-runner in this thread) ---------------------------------------
    def on_event(self, event: dict[str, Any]) -> bool:
        try:
            if "counter" not in event:
                return False
            if event.get("event") == "playbook_on_stats":
                self._recap = True
            if event.get("event") == "playbook_on_task_start":
                self._tasks += 1
                task = (event.get("event_data") or {}).get("task") or ""
                self._last_task = str(task)
            row = event_row(self.run_id, event)
            with self._lock:
                if row["seq"] in self._seen:
                    return False
                self._seen.add(row["seq"])
                if not self._buffer:
                    self._first_buffered = time.monotonic()
                self._buffer.append(row)
                due = len(self._buffer) >= BATCH_SIZE or time.monotonic() - self._first_buffered >= FLUSH_SECONDS
            if due:
                self.flush()
        except Exception as exc:  # stop the run (via the cancel callback) rather than lose events silently
            log.exception("playbook run %s: storing events failed", self.run_id)
            self._internal_error = self._internal_error or f"storing events failed: {type(exc).__name__}: {exc}"
        return False  # the events are in the database; no job_events/*.json files

    def flush(self, final: bool = False) -> None:
        """Write the waiting events in one short transaction. If the database refuses, they wait for the
        next try; after FLUSH_GIVE_UP_SECONDS of refusals (or at the end of the run) this raises."""
        with self._lock:
            rows = sorted(self._buffer, key=lambda r: r["seq"])
            self._buffer = []
        if not rows:
            return
        try:
            with self.container.unit_of_work() as svc:
                svc.session.execute(insert(PlaybookEvent), rows)
        except Exception:
            with self._lock:
                self._buffer = rows + self._buffer
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if final or now - self._failing_since >= FLUSH_GIVE_UP_SECONDS:
                raise
            log.warning("playbook run %s: %d events wait for the database", self.run_id, len(rows), exc_info=True)
            return
        self._failing_since = None
        if self.ctx is not None:
            try:
                self.ctx.progress(0.0, f"{self._tasks} tasks; TASK [{self._last_task}]" if self._last_task
                                  else "running")
            except Exception:
                log.warning("playbook run %s: progress not recorded", self.run_id, exc_info=True)

    def on_status(self, data: dict[str, Any], runner_config: Any = None) -> None:
        try:
            if data.get("status") != "running":
                return
            self._started_at = utcnow()
            with self.container.unit_of_work() as svc:
                run = svc.session.get(PlaybookRun, self.run_id)
                if run is not None and run.status in (RunStatus.NEW, RunStatus.PENDING):
                    run.status = RunStatus.RUNNING
                    run.started_at = self._started_at
        except Exception as exc:
            log.exception("playbook run %s: status update failed", self.run_id)
            self._internal_error = self._internal_error or f"status update failed: {type(exc).__name__}: {exc}"

    def should_cancel(self) -> bool:
        """ansible-runner's cancel callback: the job's cancel flag (read at most twice a second)."""
        try:
            if self._buffer and time.monotonic() - self._first_buffered >= FLUSH_SECONDS:
                self.flush()  # a quiet moment: show the waiting events to live views
            if self._internal_error:
                return True
            now = time.monotonic()
            if not self._cancel and now - self._last_cancel_check >= CANCEL_POLL_SECONDS:
                self._last_cancel_check = now
                with self.container.unit_of_work() as svc:
                    job = svc.session.get(Job, self.job_id)
                    self._cancel = bool(job is not None and job.cancel_requested)
            return self._cancel
        except Exception as exc:
            log.exception("playbook run %s: cancel check failed", self.run_id)
            self._internal_error = self._internal_error or f"cancel check failed: {type(exc).__name__}: {exc}"
            return True

    # The run ---------------------------------------------------------------------------------
    def _load(self) -> PlaybookRun:
        with self.container.unit_of_work() as svc:
            run = svc.session.execute(select(PlaybookRun).where(PlaybookRun.job_id == self.job_id)
                                      ).scalar_one_or_none()
            if run is None:
                raise RuntimeError("no playbook run belongs to this job: start runs with POST /api/v1/playbook-runs "
                                   "or 'ecocloud-ops jobs run'")
            if run.status not in (RunStatus.NEW, RunStatus.PENDING):
                raise RuntimeError(f"playbook run {run.id} is {run.status}; a run is executed once")
            job = svc.session.get(Job, self.job_id)
            self._cancel = bool(job is not None and job.cancel_requested)
            svc.session.expunge(run)
            return run

    def _prepare(self, run: PlaybookRun, run_dir: Path) -> Path:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        (run_dir / "env").mkdir(parents=True, mode=0o700)
        (run_dir / "inventory").mkdir(mode=0o700)
        (run_dir / "tmp").mkdir(mode=0o700)
        (run_dir / "env" / "extravars").write_text(extravars_yaml(run.extra_vars or {}), "utf-8")
        inventory = run_dir / "inventory" / "hosts"
        inventory.write_text(run.inventory, "utf-8")
        (run_dir / "ansible.cfg").write_text(ANSIBLE_CFG.format(tmp=run_dir / "tmp"), "utf-8")
        return inventory

    def execute(self) -> RunStatus:
        run = self._load()
        self.run_id = run.id
        run_dir = (self.container.settings.instance_dir / "runs" / str(run.id)).resolve()
        t0 = time.monotonic()
        status, rc, reason, stdout = RunStatus.ERROR, None, None, ""
        try:
            if self._cancel:
                status, reason = RunStatus.CANCELED, None
            else:
                spec = self.catalog.get(run.playbook)
                inventory = self._prepare(run, run_dir)
                import ansible_runner

                result = ansible_runner.run(
                    private_data_dir=str(run_dir), project_dir=str(self.catalog.directory),
                    playbook=spec.path.name, inventory=str(inventory), limit=run.limit, ident="run",
                    envvars=ansible_env(run_dir), settings={"pexpect_timeout": CANCEL_POLL_SECONDS},
                    timeout=run.timeout_seconds, quiet=True, event_handler=self.on_event,
                    status_handler=self.on_status, cancel_callback=self.should_cancel)
                rc = result.rc
                out = run_dir / "artifacts" / "run" / "stdout"
                stdout = _clean(out.read_text("utf-8", errors="replace")) if out.exists() else ""
                status, reason = self._outcome(result.status, rc, run.timeout_seconds, stdout)
        except Exception as exc:
            log.exception("playbook run %s failed", run.id)
            status, reason = RunStatus.ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            if status != RunStatus.SUCCESSFUL and (n := kill_run_processes(run_dir)):
                log.info("playbook run %s: %d leftover process(es) killed", run.id, n)
            try:
                self.flush(final=True)
            except Exception as exc:
                log.exception("playbook run %s: storing the last events failed", run.id)
                status, reason = RunStatus.ERROR, f"storing events failed: {type(exc).__name__}: {exc}"
            shutil.rmtree(run_dir, ignore_errors=True)
        self._finish(status, rc, reason, stdout, time.monotonic() - t0)
        return status

    def _outcome(self, runner_status: str, rc: int | None, timeout: int, stdout: str) -> tuple[RunStatus, str | None]:
        if self._internal_error:
            return RunStatus.ERROR, self._internal_error
        if runner_status == "successful":
            return RunStatus.SUCCESSFUL, None
        if runner_status == "canceled":
            return RunStatus.CANCELED, None
        if runner_status == "timeout":
            return RunStatus.TIMEOUT, f"stopped after its time limit of {timeout} s"
        last = next((ln.strip() for ln in reversed(stdout.splitlines()) if ln.strip()), "")
        if runner_status == "failed" and self._recap:
            return RunStatus.FAILED, f"ansible-playbook returned {rc}: a host failed or was unreachable"
        return RunStatus.ERROR, f"ansible-playbook stopped without a recap (rc {rc}): {last[:500]}"

    def _finish(self, status: RunStatus, rc: int | None, reason: str | None, stdout: str, elapsed: float) -> None:
        if len(stdout) > STDOUT_CAP:
            stdout = f"[… {len(stdout) - STDOUT_CAP} earlier characters not kept …]\n" + stdout[-STDOUT_CAP:]
        now = utcnow()
        with self.container.unit_of_work() as svc:
            run = svc.session.get(PlaybookRun, self.run_id)
            assert run is not None
            run.status = status
            run.rc = rc
            run.stdout = stdout
            run.finished_at = now
            run.duration_seconds = round((now - self._started_at).total_seconds() if self._started_at else elapsed, 3)
            if status == RunStatus.CANCELED:
                requested = run.status_reason or ""
                who = requested.removeprefix("cancel requested by ") if requested.startswith("cancel requested by ") \
                    else ""
                run.status_reason = (f"canceled by {who}" if who else "canceled") + (
                    "" if self._started_at else " before it started")
            else:
                run.status_reason = reason
        log.info("playbook run %s (%s): %s rc=%s in %.1f s", self.run_id, self.job_id, status, rc, elapsed)


def playbook_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """The job function of ``automation.playbook``: raises JobCanceled or RuntimeError so the generic
    job ends canceled or failed like its run."""
    execution = PlaybookExecution(ctx.container, ctx.job_id, ctx)
    status = execution.execute()
    with ctx.unit_of_work() as svc:
        run = svc.session.get(PlaybookRun, execution.run_id)
        assert run is not None
        summary = {"run_id": run.id, "playbook": run.playbook, "status": run.status, "rc": run.rc,
                   "duration_seconds": run.duration_seconds}
        reason = run.status_reason
    ctx.log(f"playbook {summary['playbook']} (run {run.id}): {status}, rc {summary['rc']}"
            + (f" — {reason}" if reason else ""), "info" if status == RunStatus.SUCCESSFUL else "warning")
    if status == RunStatus.CANCELED:
        raise JobCanceled()
    if status != RunStatus.SUCCESSFUL:
        raise RuntimeError(f"playbook run {run.id} {status}" + (f": {reason}" if reason else ""))
    return summary


def run_in_this_process(container: Container, job_id: int, worker_name: str) -> None:
    """Execute a run claimed by this process (``jobs run --follow``): the same path as the worker's,
    with heartbeats under ``worker_name`` meanwhile so a worker starting elsewhere does not take the
    run for an orphan; if this process dies, the next worker start marks the run ``error``."""
    from ..jobs.runner import Worker

    worker = Worker(container, name=worker_name)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(container.settings.worker_heartbeat_seconds):
            try:
                worker.beat()
            except Exception:
                log.exception("heartbeat failed")

    worker.beat()
    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    try:
        worker.run_job_now(job_id)
    finally:
        stop.set()
        with container.unit_of_work() as svc:
            svc.jobs.heartbeat(worker_name, stopped=True)
