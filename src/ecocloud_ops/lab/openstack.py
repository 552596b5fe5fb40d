"""A real OpenStack on loopback — Keystone, Nova (fake virt driver), Placement, Glance, Neutron, Cinder's API and
RabbitMQ — for the platform's cloud-tenant features and their tests.

Everything runs on this machine as children of this process, on free loopback ports (not the services'
well-known ones, which something else may use): one lab = one work directory holding the rendered
configuration (``etc/``), the SQLite databases (``db/``), the service state (``state/``: fernet keys, image
files, node identities, RabbitMQ's Mnesia) and one log per service (``log/<service>.log``).
:meth:`OpenStackLab.stop` kills every process by id, children first, and reaps them (this machine's init does
not reap orphans, so nothing is left to be orphaned).

The services come from PyPI, pinned in ``openstack_files/requirements.txt`` (keystone 30, nova 34, placement 16,
glance 33, neutron 29, cinder 29 — one release series — and gunicorn), installed into the lab's *own* venv by
:meth:`OpenStackLab.ensure_venv` — their pins are theirs, not the platform's. RabbitMQ is the Debian
``rabbitmq-server`` package: the lab starts its own node (own epmd, node name, Mnesia and log directories, bound to
127.0.0.1) rather than sharing a system broker, so a machine without a running broker works the same and nothing
outlives the lab.

What :meth:`OpenStackLab.start` builds — in ~40 s on two busy cores once the venv exists (the first lab of a
venv also creates the database schemas: ~20 s more; the venv itself takes ~2 minutes to install, once):

* Keystone (fernet tokens) with the ``admin`` user/project and role, region ``RegionOne``, a ``service``
  project and one user per service (roles ``admin`` and ``service``);
* Placement, Glance (file store), Neutron API (ML2 with the lab's own mechanism driver, which binds every port
  ACTIVE without agents; flat provider networks on physnet ``public``, VXLAN project networks; routers are
  database objects — nothing forwards packets), Nova API, conductor and scheduler (one cell, ``cell1``);
* Cinder's API alone (service type ``block-storage``, ``/v3/%(project_id)s``), for the projects' volume quotas:
  no scheduler, no volume service, no backend (a volume create would stay ``creating``); its default quotas are
  2 volumes and 20 GB (``cinder.conf``), unlike Cinder's and the platform's 10 and 1000, so what the platform set
  shows;
* three ``nova-compute`` services on the fake virt driver, one per resource pool, each in its own host
  aggregate and availability zone (:data:`DEFAULT_POOLS`: ``az-internet``, ``az-egov``, ``az-business``), with
  the pool's capacity reported to Placement; hosts discovered into the cell;
* the public image ``cirros-fake`` (a 4 KiB raw/bare file: the fake driver never reads it), the public flavors
  ``m1.tiny``, ``m1.small`` and ``m1.medium``, and the external network ``public`` (flat, ``203.0.113.0/24``,
  TEST-NET-3) that routers can use as their gateway.

Settings that matter (each learnt the hard way):

* the WSGI wrappers clear ``sys.argv`` before importing the service (oslo.config would parse gunicorn's arguments
  and the worker crash-loops); cinder, which reads its configuration from its command line only, gets
  ``--config-file`` there instead (``ECOLAB_WSGI_ARGV``);
* SQLite transactions begin with ``BEGIN IMMEDIATE`` in every long-running service (``ecolab_sqlite.py``):
  with oslo.db's deferred ``BEGIN``, nova-api and nova-conductor writing the cell database at once made a boot
  fail with "database is locked";
* nova runs ``FakeDriverWithoutFakeNodes`` (a stable node identity per compute, so a compute restart works) and
  sends a service token (neutron refuses nova's port deletion without it); the scheduler discovers new hosts
  itself every 2 s (``periodic_fuzzy_delay = 0``, or the first run waits up to a minute);
* neutron's schema is created from its models and stamped (its Alembic migrations fail on SQLite);
* keystone hashes passwords with the minimum bcrypt cost and caches in-process (token validation ~10x cheaper);
* RabbitMQ runs under a small subreaper (``ecolab_reaper.py``): the Erlang VM orphans a helper at shutdown;
* start-up is CPU-bound (~55 s of CPU, mostly Python imports of eleven services), so the schema-only databases
  are kept per venv and copied, the fernet keys are written directly and nova's cells are set up in one process.

Client side: :meth:`OpenStackLab.connect` (admin, openstacksdk) or :attr:`OpenStackLab.admin_auth` with
``openstack.connect(load_yaml_config=False, load_envvars=False, auth=..., region_name="RegionOne")`` — without
``load_yaml_config=False`` a ``clouds.yaml`` found on the machine silently wins.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .netlab import _alive, _children, _kill_leaves_first, _log_tail, _proc_stat

if TYPE_CHECKING:
    import openstack.connection

log = logging.getLogger(__name__)

#: the package data: config templates, WSGI wrappers, the ML2 driver, the compute wrapper, the pinned requirements
FILES = Path(__file__).with_name("openstack_files")
REGION = "RegionOne"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
CLOUD_NAME = "ecolab"
IMAGE_NAME = "cirros-fake"
#: name, vCPUs, RAM (MB), root disk (GB)
FLAVORS: tuple[tuple[str, int, int, int], ...] = (
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
)
PUBLIC_NETWORK = "public"
PUBLIC_SUBNET = "public-subnet"
PUBLIC_CIDR = "203.0.113.0/24"  # TEST-NET-3: documentation addresses, never routed anywhere
#: environment variable set on every process of a lab: "<owner pid>:<lab id>" (found in /proc/<pid>/environ)
ENV_MARKER = "ECOCLOUD_OSLAB"
#: services with an HTTP API: name → (service type, path of the catalog URL, the service's WSGI module)
_HTTP_SERVICES: dict[str, tuple[str, str, str]] = {
    "keystone": ("identity", "/v3", "keystone.wsgi.api"),
    "placement": ("placement", "", "placement.wsgi.api"),
    "glance": ("image", "", "glance.wsgi.api"),
    "neutron": ("network", "", "neutron.wsgi.api"),
    "nova": ("compute", "/v2.1", "nova.wsgi.osapi_compute"),
    # keystone puts the token's project id in the URL (cinder's classic form; clients of any age accept it)
    "cinder": ("block-storage", "/v3/%(project_id)s", "cinder.wsgi.api"),
}
_PORT_NAMES = ("keystone", "placement", "glance", "neutron", "nova", "cinder", "amqp", "amqp_dist", "epmd")
#: random ports are drawn below Linux's ephemeral range (32768+), so no outgoing connection takes one meanwhile
_PORT_RANGE = (20000, 32000)
_RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's; /usr/sbin's wrapper su's to rabbitmq
#: the readiness probes go straight to loopback, whatever proxy the environment names
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_STAMP = ".ecolab-stamp"
#: schema-only databases kept per venv; nova_cell1 also serves as cell0's
_TEMPLATE_DBS = ("keystone.sqlite", "placement.sqlite", "glance.sqlite", "neutron.sqlite", "nova_api.sqlite",
                 "nova_cell1.sqlite", "cinder.sqlite")
_ML2_DIST = "ecolab_ml2-1.0.dist-info"


@dataclass(frozen=True)
class ComputePool:
    """One resource pool: a fake compute host in its own availability zone, with the pool's capacity."""

    zone: str
    host: str
    vcpus: int
    memory_mb: int
    disk_gb: int


#: the agency's three resource pools (Internet area, e-government extranet, business private network)
DEFAULT_POOLS: tuple[ComputePool, ...] = (
    ComputePool("az-internet", "compute-internet", vcpus=32, memory_mb=131072, disk_gb=2000),
    ComputePool("az-egov", "compute-egov", vcpus=64, memory_mb=262144, disk_gb=4000),
    ComputePool("az-business", "compute-business", vcpus=48, memory_mb=196608, disk_gb=3000),
)


def default_venv() -> Path:
    """Where the lab's venv lives unless told: ``$ECOCLOUD_OPENSTACK_VENV``, else in the user's cache directory
    (kept across checkouts and CI runs on the same machine: the cold install takes ~2 min)."""
    explicit = os.environ.get("ECOCLOUD_OPENSTACK_VENV")
    if explicit:
        return Path(explicit).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ecocloud-ops" / "openstack-lab-venv"


def _venv_digest() -> str:
    """What the venv must match: the pinned requirements, the ML2 driver module and the Python version."""
    h = hashlib.sha256()
    for name in ("requirements.txt", "ecolab_ml2.py"):
        h.update((FILES / name).read_bytes())
    h.update(_ML2_DIST.encode())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        raise RuntimeError(f"cannot find the site-packages of {venv} (found {found})")
    return found[0]


def _install_ml2_driver(venv: Path) -> None:
    """Install ``ecolab_ml2.py`` into the venv with a dist-info that declares it as the ML2 mechanism driver
    ``ecolab`` (neutron loads mechanism drivers by entry-point name only)."""
    site = _site_packages(venv)
    shutil.copyfile(FILES / "ecolab_ml2.py", site / "ecolab_ml2.py")
    dist = site / _ML2_DIST
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ecolab-ml2\nVersion: 1.0\n"
                                   "Summary: ML2 mechanism driver of the EcoCloud OpenStack lab\n")
    (dist / "entry_points.txt").write_text("[neutron.ml2.mechanism_drivers]\necolab = ecolab_ml2:LabMechanismDriver\n")
    (dist / "INSTALLER").write_text("ecocloud-ops\n")
    (dist / "RECORD").write_text(f"ecolab_ml2.py,,\n{_ML2_DIST}/METADATA,,\n{_ML2_DIST}/entry_points.txt,,\n"
                                 f"{_ML2_DIST}/INSTALLER,,\n{_ML2_DIST}/RECORD,,\n")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _lab_id_of(pid: int) -> str | None:
    """The lab marker in a process's environment, or None (gone, not ours, or not readable)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{ENV_MARKER}=".encode()
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def _marked_pids(match: Callable[[str], bool]) -> dict[int, int]:
    """pid → ppid of every live process whose lab marker satisfies ``match``."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        marker = _lab_id_of(pid)
        if marker is None or not match(marker):
            continue
        stat = _proc_stat(pid)
        if stat is not None and stat[0] != "Z":
            found[pid] = stat[1]
    return found


def _descendants(pid: int) -> dict[int, int]:
    """pid → ppid of ``pid`` and all its live descendants."""
    found: dict[int, int] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        stat = _proc_stat(current)
        if stat is None or stat[0] == "Z":
            continue
        found[current] = stat[1]
        try:
            tasks = [int(t) for t in os.listdir(f"/proc/{current}/task")]
        except OSError:
            tasks = [current]
        for task in tasks:
            try:
                kids = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                kids = [str(k) for k in _children(current)] if task == current else []
            stack.extend(int(k) for k in kids if int(k) not in found)
    return found


@contextlib.contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Silence openstacksdk's own deprecation warnings around the lab's calls: 4.2x warns about InfluxDB on every
    connection (configured or not) and about its own resource internals, and a caller running with warnings as
    errors (pytest here) would fail on them."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"openstack(\.|$)")
        yield


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM


class OpenStackLab:
    """Keystone, Nova (fake driver), Placement, Glance, Neutron, Cinder's API and RabbitMQ on loopback; see the
    module doc.

    Use as a context manager, or :meth:`start` then :meth:`stop`. Does not need root. Needs the Debian package
    ``rabbitmq-server`` and the lab venv (:meth:`ensure_venv`; :meth:`start` calls it).
    """

    def __init__(self, workdir: Path | None = None, *, venv: Path | None = None, base_port: int = 0,
                 pools: tuple[ComputePool, ...] = DEFAULT_POOLS) -> None:
        """Plan a lab (nothing runs before :meth:`start`).

        ``workdir``: where configs, databases, state and logs go; it must be empty or absent (a lab always starts
        from an empty state). Without one, a temporary directory is used and removed by :meth:`stop`.
        ``venv``: the lab venv (default :func:`default_venv`). ``base_port``: use ``base_port`` …
        ``base_port + 8`` (all must be free) instead of random free ports. ``pools``: the compute hosts.
        """
        if base_port and not 1024 <= base_port <= 65535 - len(_PORT_NAMES):
            raise ValueError(f"base_port must be between 1024 and {65535 - len(_PORT_NAMES)}")
        if not pools or len({p.zone for p in pools}) != len(pools) or len({p.host for p in pools}) != len(pools):
            raise ValueError("pools need distinct zones and hosts, at least one")
        self.venv = Path(venv).expanduser().absolute() if venv is not None else default_venv().absolute()
        self.base_port = base_port
        self.pools = pools
        self._own_workdir = workdir is None
        self.workdir: Path | None = Path(workdir).absolute() if workdir is not None else None
        self.lab_id = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # hex: a urlsafe token may begin with '-', which keystone-manage's argparse takes for an option
        self.admin_password = secrets.token_hex(18)
        self._passwords = {name: secrets.token_hex(18)
                           for name in ("nova", "placement", "glance", "neutron", "cinder")}
        self.ports: dict[str, int] = {}
        self._procs: list[_Proc] = []
        self._started = False
        self._keep_workdir = False  # after a failed start, for its logs
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ venv

    @staticmethod
    def ensure_venv(venv: Path, say: Callable[[str], object] = print) -> Path:
        """Create or update the lab's venv at ``venv`` with the pinned OpenStack services; return its path.

        Idempotent and fast once done: a stamp file holds the digest of the requirements, the ML2 driver and the
        Python version, and nothing runs while it matches. Concurrent callers wait on a lock file beside the
        venv. The first install downloads ~170 packages (~600 MB installed, about 2 minutes). Raises
        RuntimeError with the tail of pip's log when the install fails.
        """
        venv = Path(venv).expanduser().absolute()
        digest = _venv_digest()
        stamp = venv / _STAMP

        def current() -> bool:
            try:
                return stamp.read_text().strip() == digest and (venv / "bin" / "python").exists()
            except OSError:
                return False

        if current():
            return venv
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(venv.parent / f".{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if current():  # another process finished it while we waited
                return venv
            t0 = time.monotonic()
            if not (venv / "bin" / "python").exists():
                base = getattr(sys, "_base_executable", None) or sys.executable
                say(f"OpenStack lab: creating the venv {venv}")
                subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
            stamp.unlink(missing_ok=True)
            pip_log = venv / ".ecolab-pip.log"
            say("OpenStack lab: installing keystone, nova, placement, glance, neutron, cinder (pinned) into the venv; "
                "about 2 minutes the first time")
            with open(pip_log, "wb") as out:
                result = subprocess.run(
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                     "--no-input", "-r", str(FILES / "requirements.txt")],
                    stdout=out, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"installing the OpenStack lab venv failed (exit {result.returncode}, "
                                   f"log {pip_log}):\n{_log_tail(pip_log, 3000)}")
            _install_ml2_driver(venv)
            stamp.write_text(digest + "\n")
            say(f"OpenStack lab: venv ready in {time.monotonic() - t0:.0f} s")
        return venv

    # ------------------------------------------------------------------ public view

    def _need_started(self) -> None:
        if not self._started:
            raise RuntimeError("the OpenStack lab is not started")

    def _url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def endpoints(self) -> dict[str, str]:
        """Service type → public endpoint URL (identity, compute, placement, image, network, block-storage; the
        last one as in the catalog, with ``%(project_id)s`` for keystone to fill in)."""
        self._need_started()
        return {stype: self._url(name) + path for name, (stype, path, _mod) in _HTTP_SERVICES.items()}

    @property
    def auth_url(self) -> str:
        self._need_started()
        return self._url("keystone") + "/v3"

    @property
    def admin_auth(self) -> dict[str, str]:
        """The auth dict of the cloud admin (user ``admin``, project ``admin``, domain ``Default``) for
        ``openstack.connect(load_yaml_config=False, load_envvars=False, auth=..., region_name=REGION)``."""
        self._need_started()
        return {"auth_url": self.auth_url, "username": ADMIN_USER, "password": self.admin_password,
                "project_name": ADMIN_PROJECT, "user_domain_name": "Default", "project_domain_name": "Default"}

    @property
    def transport_url(self) -> str:
        """The lab's RabbitMQ (user guest, loopback only)."""
        self._need_started()
        return f"rabbit://guest:guest@127.0.0.1:{self.ports['amqp']}/"

    def connect(self) -> openstack.connection.Connection:
        """A new admin connection (openstacksdk), ignoring any clouds.yaml and OS_* variables of the machine."""
        self._need_started()
        import openstack

        with _quiet_sdk():
            return openstack.connect(load_yaml_config=False, load_envvars=False, auth=self.admin_auth,
                                     region_name=REGION, identity_interface="public", interface="public")

    def clouds_yaml(self, path: Path) -> Path:
        """Write a clouds.yaml (mode 0600: it holds the admin password) with the cloud ``ecolab``; return its path."""
        self._need_started()
        import yaml

        data = {"clouds": {CLOUD_NAME: {"auth": self.admin_auth, "region_name": REGION, "interface": "public",
                                        "identity_api_version": 3}}}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            yaml.safe_dump(data, out, sort_keys=False)
        return path

    def log_path(self, service: str) -> Path:
        """The log file of a service (``keystone``, ``nova-api``, ``nova-compute-egov``, ``rabbitmq``, …)."""
        if self.workdir is None:
            raise RuntimeError("the OpenStack lab has no work directory yet")
        return self.workdir / "log" / f"{service}.log"

    def pids(self) -> set[int]:
        """Every live process of this lab: the ones it started, their descendants, and anything carrying its
        marker in the environment (so a double-forked process is found as well)."""
        found: dict[int, int] = {}
        for proc in list(self._procs):
            if proc.popen.poll() is None:  # not reaped: its pid cannot belong to another process yet
                found.update(_descendants(proc.popen.pid))
        found.update(_marked_pids(lambda marker: marker == self.lab_id))
        return set(found)

    # ------------------------------------------------------------------ start

    def __enter__(self) -> OpenStackLab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 300) -> None:
        """Start every service and create the lab's content (see the module doc); return when all is usable.

        Raises RuntimeError naming the failing step or service with the tail of its log (everything started so
        far is stopped first), or when the lab is already started.
        """
        if self._started:
            raise RuntimeError("the OpenStack lab is already started")
        if not _RABBITMQ_SERVER.exists() or shutil.which("epmd") is None:
            raise RuntimeError(f"{_RABBITMQ_SERVER} or epmd is missing: install the Debian package rabbitmq-server")
        t_all = time.monotonic()
        deadline = t_all + timeout
        self.ensure_venv(self.venv, say=log.info)
        self.timings["venv"] = time.monotonic() - t_all
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="oslab-"))
        elif self.workdir.exists() and any(self.workdir.iterdir()):
            raise RuntimeError(f"the OpenStack lab's work directory {self.workdir} is not empty")
        self._started = True
        atexit.register(self.stop)
        try:
            with _quiet_sdk():
                self._start(deadline)
        except BaseException:
            self._keep_workdir = True
            log.error("OpenStack lab: start failed; the logs stay in %s", self.workdir / "log")
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - t_all
        log.info("OpenStack lab: ready in %.1f s (%s)", self.timings["start"],
                 ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))

    def _start(self, deadline: float) -> None:
        """Everything CPU-bound starts as early as its prerequisites allow: on two cores the start-up is the sum
        of the services' Python imports, so idle waits are what to avoid."""
        assert self.workdir is not None
        t0 = time.monotonic()
        self.ports = self._pick_ports()
        self._render_configs()
        self._start_rabbitmq()
        self._prepare_databases()
        self.timings["databases"] = time.monotonic() - t0

        t1 = time.monotonic()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="oslab-start") as pool:
            identity = pool.submit(self._setup_identity, deadline)
            cells = pool.submit(self._setup_cells)
            for name in ("placement", "glance", "neutron", "cinder"):
                self._start_http(name)
            cells.result()
            self._start_http("nova")
            identity.result()
        # conductor, scheduler and computes talk to Placement as the nova user from their first seconds on
        self._wait_amqp(deadline)
        log.info("OpenStack lab: keystone, cells and rabbitmq ready after %.1f s", time.monotonic() - t0)
        self._start_nova_services()
        for name in ("placement", "glance", "neutron", "nova", "cinder"):
            self._wait_http(name, deadline)
        self.timings["services"] = time.monotonic() - t1

        t2 = time.monotonic()
        conn: Any = self.connect()
        try:
            self._wait_computes(conn, deadline)
            log.info("OpenStack lab: compute services up after %.1f s", time.monotonic() - t0)
            self._create_content(conn, deadline)
        finally:
            conn.close()
        self.timings["content"] = time.monotonic() - t2

    def _pick_ports(self) -> dict[str, int]:
        if self.base_port:
            ports = {name: self.base_port + i for i, name in enumerate(_PORT_NAMES)}
            busy = [f"{name} {port}" for name, port in ports.items() if not _port_free(port)]
            if busy:
                raise RuntimeError(f"ports in use on 127.0.0.1: {', '.join(busy)} (choose another base_port)")
            return ports
        chosen: dict[str, int] = {}
        rng = random.SystemRandom()
        while len(chosen) < len(_PORT_NAMES):
            port = rng.randrange(*_PORT_RANGE)
            if port not in chosen.values() and _port_free(port):
                chosen[_PORT_NAMES[len(chosen)]] = port
        return chosen

    # ------------------------------------------------------------------ configuration

    def _etc(self, service: str, name: str) -> str:
        assert self.workdir is not None
        return str(self.workdir / "etc" / service / name)

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def _render_configs(self) -> None:
        assert self.workdir is not None
        state = self.workdir / "state"
        for sub in ("etc", "db", "log", "home", "state/keystone", "state/glance/images", "state/glance/staging",
                    "state/glance/tasks", "state/glance/locks", "state/neutron/locks", "state/nova/locks",
                    "state/nova/instances", "state/cinder/locks", "state/cinder/coordination", "state/rabbitmq"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "etc").chmod(0o700)  # the configs hold the service passwords
        values = {
            "db_dir": str(self.workdir / "db"), "state_dir": str(state), "venv": str(self.venv), "region": REGION,
            "keystone_url": self._url("keystone"), "transport_url": self.transport_url,
            "amqp_port": str(self.ports["amqp"]),
            **{f"{name}_password": password for name, password in self._passwords.items()},
        }
        layout = {"keystone": ["keystone.conf"], "placement": ["placement.conf"], "glance": ["glance-api.conf"],
                  "neutron": ["neutron.conf", "ml2_conf.ini"], "nova": ["nova.conf"], "cinder": ["cinder.conf"],
                  "rabbitmq": ["rabbitmq.conf"]}
        for service, names in layout.items():
            (self.workdir / "etc" / service).mkdir(exist_ok=True)
            for name in names:
                text = string.Template((FILES / name).read_text()).substitute(values)
                Path(self._etc(service, name)).write_text(text)
        template = string.Template((FILES / "nova-compute.conf").read_text())
        for pool in self.pools:
            (state / f"nova-{pool.host}" / "instances").mkdir(parents=True, exist_ok=True)
            Path(self._etc("nova", f"compute-{pool.host}.conf")).write_text(template.substitute(values,
                                                                                                 host=pool.host))
        # nova's WSGI app reads its paste pipeline from the first of its config files
        shutil.copyfile(self.venv / "etc" / "nova" / "api-paste.ini", self._etc("nova", "api-paste.ini"))
        Path(self._etc("rabbitmq", "rabbitmq-env.conf")).write_text("# empty: the lab sets RABBITMQ_* itself\n")
        Path(self._etc("rabbitmq", "enabled_plugins")).write_text("[].\n")

    def _env(self, **extra: str) -> dict[str, str]:
        """A clean environment for a lab process: the venv first on PATH, none of the caller's OS_* or venv
        variables, no bytecode written next to the package data, and the lab marker."""
        assert self.workdir is not None
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.workdir / "home"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            ENV_MARKER: self.lab_id,
        }
        env.update(extra)
        return env

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], stop_signal: int = signal.SIGTERM) -> _Proc:
        log_path = self.log_path(name)
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(self.workdir), close_fds=True)
        proc = _Proc(name, popen, log_path, stop_signal)
        with self._lock:
            self._procs.append(proc)
        return proc

    def _run_step(self, name: str, argv: list[str], timeout: float = 300) -> None:
        """Run a one-shot command (a db sync, ...), its output appended to the service's log; raise RuntimeError
        with the log's tail when it fails."""
        log_path = self.log_path(name)
        with open(log_path, "ab") as out:
            shown = " ".join("***" if prev == "--bootstrap-password" else arg
                             for prev, arg in zip(["", *argv], argv, strict=False))
            out.write(f"\n$ {shown}\n".encode())
            out.flush()
            try:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        env=self._env(), cwd=str(self.workdir), timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"OpenStack lab: {Path(argv[0]).name} {' '.join(argv[1:3])} timed out "
                                   f"(log {log_path}):\n{_log_tail(log_path, 3000)}") from exc
        if result.returncode != 0:
            raise RuntimeError(f"OpenStack lab: {Path(argv[0]).name} {' '.join(argv[1:3])} failed "
                               f"(exit {result.returncode}, log {log_path}):\n{_log_tail(log_path, 3000)}")

    def _failure(self, proc: _Proc, what: str) -> RuntimeError:
        return RuntimeError(f"OpenStack lab: {proc.name} {what} (log {proc.log}):\n{_log_tail(proc.log, 3000)}")

    def _check_alive(self) -> None:
        for proc in list(self._procs):
            code = proc.popen.poll()
            if code is not None:
                raise self._failure(proc, f"exited with status {code}")

    def _find(self, name: str) -> _Proc:
        return next(p for p in self._procs if p.name == name)

    # ------------------------------------------------------------------ rabbitmq

    def _start_rabbitmq(self) -> None:
        """The lab's own RabbitMQ node, with its own epmd (a foreground child: epmd -daemon would be orphaned)."""
        assert self.workdir is not None
        rabbit_state = self.workdir / "state" / "rabbitmq"
        (rabbit_state / "home").mkdir(exist_ok=True)
        epmd = shutil.which("epmd") or "epmd"
        epmd_env = self._env(ERL_EPMD_ADDRESS="127.0.0.1")
        self._spawn("epmd", [epmd, "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"], epmd_env)
        env = self._env(
            HOME=str(rabbit_state / "home"),  # the Erlang cookie
            ERL_EPMD_PORT=str(self.ports["epmd"]),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=self._etc("rabbitmq", "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=self._etc("rabbitmq", "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=self._etc("rabbitmq", "enabled_plugins"),
            RABBITMQ_NODENAME=f"ecolab{self.ports['amqp']}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_DIST_PORT=str(self.ports["amqp_dist"]),
            RABBITMQ_MNESIA_BASE=str(rabbit_state / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log" / "rabbitmq.d"),
            RABBITMQ_PID_FILE=str(rabbit_state / "rabbitmq.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        # Under a subreaper: the Erlang VM orphans a helper process at every shutdown.
        self._spawn("rabbitmq", [self._bin("python"), str(FILES / "ecolab_reaper.py"), str(_RABBITMQ_SERVER)], env)

    def _wait_amqp(self, deadline: float) -> None:
        proc = self._find("rabbitmq")
        while not _listening(self.ports["amqp"]):
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._failure(proc, f"not listening on 127.0.0.1:{self.ports['amqp']} in time")
            time.sleep(0.2)

    # ------------------------------------------------------------------ databases

    def _template_dir(self) -> Path:
        """Where the schema-only databases of this venv are kept (see :meth:`_prepare_databases`)."""
        h = hashlib.sha256((self.venv / _STAMP).read_bytes())
        h.update((FILES / "neutron_schema.py").read_bytes())
        h.update(",".join(_TEMPLATE_DBS).encode())
        return self.venv / "ecolab-db-templates" / h.hexdigest()[:16]

    def _prepare_databases(self) -> None:
        """Give the lab its databases with every schema at head, and switch them to WAL.

        Creating the schemas takes eight command runs, mostly Python start-up (~35 s of CPU); their result depends
        only on the venv. So the first lab of a venv keeps copies (``<venv>/ecolab-db-templates/``) and later labs
        copy those. Both nova cells get a copy of the same cell schema; the cell mappings are per lab."""
        assert self.workdir is not None
        db = self.workdir / "db"
        cache = self._template_dir()
        if (cache / "complete").exists():
            for name in _TEMPLATE_DBS:
                shutil.copyfile(cache / name, db / name)
        else:
            self._create_schemas()
            self._save_templates(cache)
        shutil.copyfile(db / "nova_cell1.sqlite", db / "nova_cell0.sqlite")
        for path in sorted(db.glob("*.sqlite")):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")

    def _create_schemas(self) -> None:
        assert self.workdir is not None
        db = self.workdir / "db"
        neutron_confs = ["--config-file", self._etc("neutron", "neutron.conf"),
                         "--config-file", self._etc("neutron", "ml2_conf.ini")]
        nova_manage = [self._bin("nova-manage"), "--config-file", self._etc("nova", "nova.conf")]
        chains = [
            [("keystone-manage", [self._bin("keystone-manage"), "--config-file", self._etc("keystone", "keystone.conf"),
                                  "db_sync"])],
            [("placement-manage", [self._bin("placement-manage"), "--config-file",
                                   self._etc("placement", "placement.conf"), "db", "sync"])],
            [("glance-manage", [self._bin("glance-manage"), "--config-file", self._etc("glance", "glance-api.conf"),
                                "db_sync"])],
            [("neutron-db-manage", [self._bin("python"), str(FILES / "neutron_schema.py"),
                                    f"sqlite:///{db / 'neutron.sqlite'}"]),
             ("neutron-db-manage", [self._bin("neutron-db-manage"), *neutron_confs, "stamp", "heads"])],
            [("nova-manage", [*nova_manage, "api_db", "sync"]),
             ("nova-manage", [*nova_manage, "db", "sync", "--local_cell"])],
            [("cinder-manage", [self._bin("cinder-manage"), "--config-file", self._etc("cinder", "cinder.conf"),
                                "db", "sync"])],
        ]

        def run(chain: list[tuple[str, list[str]]]) -> None:
            for name, argv in chain:
                self._run_step(name, argv)

        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="oslab-db") as pool:
            futures = [pool.submit(run, chain) for chain in chains]
            errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            raise errors[0]

    def _save_templates(self, cache: Path) -> None:
        """Copy the new schema-only databases to ``cache`` (atomically: a concurrent lab may do the same)."""
        assert self.workdir is not None
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
            for name in _TEMPLATE_DBS:
                shutil.copyfile(self.workdir / "db" / name, tmp / name)
            (tmp / "complete").write_text("")
            try:
                tmp.rename(cache)
            except OSError:  # another lab saved them first
                shutil.rmtree(tmp, ignore_errors=True)
            for old in cache.parent.iterdir():
                if old != cache and not old.name.startswith(".tmp-"):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.warning("OpenStack lab: cannot keep the database templates in %s: %s", cache.parent, exc)

    def _write_fernet_keys(self) -> None:
        """What ``keystone-manage fernet_setup`` and ``credential_setup`` leave: a key repository (0700) with a
        staged key ``0`` and a primary key ``1`` (0600), each 32 random bytes in URL-safe base64 — written here
        to spare two Python start-ups."""
        assert self.workdir is not None
        for repository in ("fernet-keys", "credential-keys"):
            path = self.workdir / "state" / "keystone" / repository
            path.mkdir(mode=0o700, parents=True)
            for index in ("0", "1"):
                fd = os.open(path / index, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(base64.urlsafe_b64encode(os.urandom(32)))

    def _setup_identity(self, deadline: float) -> None:
        """Keystone: keys, bootstrap (admin, region, its own endpoint), serve, then the service users and catalog."""
        self._write_fernet_keys()
        keystone_url = self._url("keystone") + "/v3"
        self._run_step("keystone-manage", [
            self._bin("keystone-manage"), "--config-file", self._etc("keystone", "keystone.conf"), "bootstrap",
            "--bootstrap-password", self.admin_password, "--bootstrap-username", ADMIN_USER,
            "--bootstrap-project-name", ADMIN_PROJECT, "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone", "--bootstrap-region-id", REGION,
            "--bootstrap-public-url", keystone_url, "--bootstrap-internal-url", keystone_url,
            "--bootstrap-admin-url", keystone_url])
        self._start_http("keystone")
        self._wait_http("keystone", deadline)
        self._register_services()

    def _setup_cells(self) -> None:
        """cell0 (instances that never got a host) and cell1 (this lab's RabbitMQ and cell database)."""
        assert self.workdir is not None
        self._run_step("nova-manage", [self._bin("python"), str(FILES / "nova_cells.py"),
                                       f"sqlite:///{self.workdir / 'db' / 'nova_cell0.sqlite'}",
                                       "--config-file", self._etc("nova", "nova.conf")])

    # ------------------------------------------------------------------ services

    def _start_http(self, name: str) -> None:
        """One gunicorn (one worker, threads) serving the service's WSGI wrapper on its port."""
        _stype, _path, module = _HTTP_SERVICES[name]
        config_env = {
            "keystone": {"OS_KEYSTONE_CONFIG_DIR": self._etc("keystone", "")},
            "placement": {"OS_PLACEMENT_CONFIG_DIR": self._etc("placement", "")},
            "glance": {"OS_GLANCE_CONFIG_DIR": self._etc("glance", "")},
            "neutron": {"OS_NEUTRON_CONFIG_DIR": self._etc("neutron", ""),
                        "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"},
            "nova": {"OS_NOVA_CONFIG_DIR": self._etc("nova", ""), "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"},
            "cinder": {"ECOLAB_WSGI_ARGV": shlex.join(["--config-file", self._etc("cinder", "cinder.conf")])},
        }[name]
        argv = [self._bin("gunicorn"), "--bind", f"127.0.0.1:{self.ports[name]}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "8", "--timeout", "300", "--graceful-timeout", "2",
                "--pythonpath", str(FILES), "--name", f"ecolab-{name}", "--access-logfile", "-",
                "ecolab_wsgi:application"]
        # SIGINT: gunicorn's quick shutdown (its master still stops and reaps the worker); SIGTERM waits for idle
        # keep-alive connections up to the graceful timeout
        self._spawn(f"{name}-api" if name == "nova" else name, argv,
                    self._env(ECOLAB_WSGI_APP=module, **config_env), signal.SIGINT)

    def _wait_http(self, name: str, deadline: float) -> None:
        """Wait until the service answers HTTP at all (any status: an API root may say 300 or 401)."""
        proc = self._find(f"{name}-api" if name == "nova" else name)
        url = self._url(name) + "/"
        while True:
            self._check_alive()
            try:
                with _NO_PROXY.open(url, timeout=5):
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise self._failure(proc, f"not answering on {url} in time")
            time.sleep(0.2)

    def _register_services(self) -> None:
        """The ``service`` project, one user per service (roles admin and service: nova's service token and
        neutron's events to nova need the latter) and the catalog."""
        conn: Any = self.connect()  # the identity proxy's type is a v2/v3 union: v3 is what keystone serves
        try:
            project = conn.identity.create_project(name="service", domain_id="default",
                                                   description="OpenStack lab services")
            roles = [conn.identity.find_role(name, ignore_missing=False) for name in ("admin", "service")]
            for name in ("placement", "glance", "neutron", "nova", "cinder"):
                stype, path, _module = _HTTP_SERVICES[name]
                user = conn.identity.create_user(name=name, password=self._passwords[name], domain_id="default",
                                                 default_project_id=project.id)
                for role in roles:
                    conn.identity.assign_project_role_to_user(project, user, role)
                service = conn.identity.create_service(name=name, type=stype)
                for interface in ("public", "internal", "admin"):
                    conn.identity.create_endpoint(service_id=service.id, interface=interface,
                                                  url=self._url(name) + path, region_id=REGION)
        finally:
            conn.close()

    def _start_nova_services(self) -> None:
        nova_conf = self._etc("nova", "nova.conf")
        for binary in ("conductor", "scheduler"):
            self._spawn(f"nova-{binary}", [self._bin("python"), str(FILES / "nova_service.py"), binary,
                                           "--config-file", nova_conf], self._env())
        for pool in self.pools:
            env = self._env(ECOLAB_VCPUS=str(pool.vcpus), ECOLAB_MEMORY_MB=str(pool.memory_mb),
                            ECOLAB_DISK_GB=str(pool.disk_gb))
            self._spawn(f"nova-compute-{pool.host.removeprefix('compute-')}",
                        [self._bin("python"), str(FILES / "nova_compute.py"), "--config-file", nova_conf,
                         "--config-file", self._etc("nova", f"compute-{pool.host}.conf")], env)

    def _wait_computes(self, conn: Any, deadline: float) -> None:
        """Wait for conductor, scheduler and every compute to report up, and for each compute's resource
        provider in Placement (discover_hosts maps only hosts whose compute node exists)."""
        hosts = {pool.host for pool in self.pools}
        while True:
            self._check_alive()
            services = list(conn.compute.services())
            up = {(s.binary, s.host) for s in services if s.state == "up" and s.status == "enabled"}
            computes = {host for binary, host in up if binary == "nova-compute"}
            others = {binary for binary, _host in up}
            providers = {rp.name for rp in conn.placement.resource_providers()}
            if hosts <= computes and {"nova-conductor", "nova-scheduler"} <= others and hosts <= providers:
                return
            if time.monotonic() > deadline:
                missing = sorted(hosts - computes) or sorted(hosts - providers)
                name = f"nova-compute-{missing[0].removeprefix('compute-')}" if missing else "nova-scheduler"
                raise self._failure(self._find(name), f"not up in time (services up: {sorted(up)}, "
                                                      f"resource providers: {sorted(providers)})")
            time.sleep(0.5)

    def _create_content(self, conn: Any, deadline: float) -> None:
        """Availability zones (one aggregate per pool), flavors, the image and the external network.

        A host joins an aggregate only once the scheduler's periodic discovery has mapped it to cell1 (nova
        answers 404 until then): that is the wait for discovery."""
        from openstack import exceptions as os_exc

        for pool in self.pools:
            aggregate = conn.compute.create_aggregate(name=f"pool-{pool.zone.removeprefix('az-')}",
                                                      availability_zone=pool.zone)
            while True:
                try:
                    conn.compute.add_host_to_aggregate(aggregate, pool.host)
                    break
                except os_exc.NotFoundException:
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise self._failure(self._find("nova-scheduler"),
                                            f"did not map {pool.host} to cell1 in time") from None
                    time.sleep(0.5)
        for name, vcpus, ram, disk in FLAVORS:
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
        data = (b"EcoCloud OpenStack lab: a fake image, never booted by the fake driver.\n" * 64)[:4096]
        conn.image.create_image(name=IMAGE_NAME, data=data, disk_format="raw", container_format="bare",
                                visibility="public", wait=True, timeout=60)
        network = conn.network.create_network(name=PUBLIC_NETWORK, is_router_external=True, is_shared=False,
                                               provider_network_type="flat", provider_physical_network="public")
        conn.network.create_subnet(name=PUBLIC_SUBNET, network_id=network.id, ip_version=4, cidr=PUBLIC_CIDR,
                                   gateway_ip="203.0.113.1", is_dhcp_enabled=False,
                                   allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.250"}])

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop every process of the lab by id and reap it: the services first (SIGTERM, gunicorn SIGINT), then
        RabbitMQ and epmd, then SIGKILL whatever is left, children before parents. Removes a temporary work
        directory (kept after a failed start, for its logs). Idempotent; never raises (problems are logged)."""
        if not self._started:
            return
        t0 = time.monotonic()
        try:
            self._terminate()
        except Exception:
            log.exception("OpenStack lab: stopping processes failed")
        if self._own_workdir and not self._keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._started = False
        atexit.unregister(self.stop)
        log.info("OpenStack lab: stopped in %.1f s", time.monotonic() - t0)

    def _terminate(self) -> None:
        procs = list(self._procs)
        broker = [p for p in procs if p.name in ("rabbitmq", "epmd")]
        for group, grace in (([p for p in procs if p not in broker], 10.0), (broker, 15.0)):
            for proc in group:
                if proc.popen.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.popen.send_signal(proc.stop_signal)
            end = time.monotonic() + grace
            for proc in group:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(max(0.01, end - time.monotonic()))
        leftovers: dict[int, int] = {}
        for proc in procs:
            if proc.popen.poll() is None:  # not reaped: its pid cannot belong to another process yet
                leftovers.update(_descendants(proc.popen.pid))
        leftovers.update(_marked_pids(lambda marker: marker == self.lab_id))
        if leftovers:
            log.warning("OpenStack lab: killing %d process(es) that ignored SIGTERM: %s", len(leftovers),
                        sorted(leftovers))
            _kill_leaves_first(leftovers)
        for proc in procs:
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                log.error("OpenStack lab: %s (pid %s) does not die", proc.name, proc.popen.pid)
        self._procs.clear()

    @staticmethod
    def cleanup_stale() -> int:
        """Kill the processes of labs whose owner process is gone (a crashed test run); return how many.

        Their orphans were adopted by init, which does not reap here: they end as zombies."""
        def stale(marker: str) -> bool:
            owner = marker.partition(":")[0]
            return not owner.isdigit() or (int(owner) != os.getpid() and not _alive(int(owner)))

        found = _marked_pids(stale)
        if found:
            log.warning("OpenStack lab: killing %d stale lab process(es): %s", len(found), sorted(found))
            _kill_leaves_first(found)
        return len(found)
