"""A network-namespace lab for disaster-recovery drills: a PostgreSQL 15 primary ("production") streaming to a
hot standby ("DR"), a service address (VIP) that moves between them, and an isolated "copy" host for test-mode
drills. Ansible drives failover over SSH exactly as it would real hosts (``playbooks/dr_*.yml``).

Needs root and the Debian packages ``iproute2 openssh-server openssh-client util-linux postgresql-15
iputils-arping``. Everything runs on this machine and nothing can leave it: no namespace has a default route,
IP forwarding is off in every lab namespace, and the root namespace blackholes the rest of the lab's block.

Topology (``<name>`` is the lab name, ``ecodr`` by default)::

      root namespace (the platform: ansible, psycopg)
        │ <name>-lan (.1)                     │ <name>-mgmt (.9)
        │                                     │
    ┌───┴──── <name>-sw: bridge br0 ────┐     │
    │ p-host        p-prod       p-dr   │     │
    └──────────────┬────────────┬───────┘     │
                   │ lan0 (.2)  │ lan0 (.3)   │ mgmt0 (.10)
             <name>-prod   <name>-dr ─────── <name>-copy
                                 repl0 (.13)   repl0 (.14)

Address plan: one free /28 of the RFC 2544 range 198.18.0.0/15 (searched from the top down), registered in
``/run/ecocloud-netlab/<name>.json`` like :class:`~ecocloud_ops.lab.netlab.NetLab` does, so labs starting
later do not overlap it; the root namespace also gets a blackhole route for the whole /28 (that route is what
the registry entry is matched with). Offsets in the block:

* ``/29`` at +0, the service LAN on the bridge: +1 the root namespace, +2 prod, +3 DR, +4 the VIP;
* ``/30`` at +8, the copy's management link: +9 the root namespace, +10 the copy (SSH and PostgreSQL);
* ``/30`` at +12, the replication link DR ↔ copy: +13 DR, +14 the copy. The copy reaches nothing else: not
  production, not the VIP (it can stream from the DR standby, cascading, until it is promoted).

The VIP is a ``/32`` on the holder's ``lan0``; whoever takes it sends a gratuitous ARP (``arping -U``), and the
root side of the LAN accepts those (``arp_accept=1``) so its neighbour cache follows at once.

Hosts: ``prod``, ``dr`` and ``copy`` (in the inventory ``<name>-prod`` in group ``primary``, ``<name>-dr`` in
``standby``, ``<name>-copy`` in ``copy``). Each runs an OpenSSH ``sshd`` (root login with the lab's ed25519 key only,
ed25519 host keys listed in the lab's ``known_hosts``) as the init of its own PID, mount (private ``/proc``) and
UTS namespace (hostname ``<name>-<host>``): every process started over SSH, PostgreSQL included, lives in that
PID namespace, and :meth:`DRLab.stop` (or the death of the sshd) kills them all. The lab starts its own
PostgreSQL instances in the same namespaces (``nsenter``), so ``pg_ctl`` and ``kill`` over SSH see them.

PostgreSQL: one instance per host, OS user ``postgres``, port 5432 in its namespace, ``listen_addresses='*'``
(so it answers on the VIP once the host holds it). Each host has a configuration directory
``<workdir>/<host>/`` (``pg_ctl -D`` points there) with ``postgresql.conf`` (``data_directory``, ``hba_file``,
the socket directory ``<workdir>/<host>/run``, replication settings), ``pg_hba.conf`` (trust for local
connections and the lab's block, replication included) and the server log ``postgresql.log``; the data
directory is ``<workdir>/<host>/data`` (initialised with data checksums, so ``pg_rewind`` works). Base
backups and ``pg_rewind`` copy data directories only, so per-host settings never travel with them. prod's and
DR's configurations name each other in ``primary_conninfo`` (application name = the host name) and their own
replication slot (``prod_slot``/``dr_slot``, created on the upstream): whether a server is a standby depends only
on ``standby.signal``. The copy is built with ``pg_basebackup -R`` (``primary_conninfo`` to DR's replication
link address in its ``postgresql.auto.conf``). The primary holds the table ``dr_markers`` for drill markers.

Initial state (after :meth:`DRLab.start` and :meth:`DRLab.reset`): prod is the primary and holds the VIP, DR is a
hot standby streaming from prod through ``dr_slot`` and caught up, the copy is stopped and has no data.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from .netlab import (
    _REGISTRY,
    LAB_RANGE,
    _alive,
    _children,
    _kill_leaves_first,
    _list_netns,
    _log_tail,
    _netns_key,
    _occupied,
    _remove_namespaces,
    _run,
    _run_parallel,
    _unregister,
    lab_workdir,
    register_lab,
)

log = logging.getLogger(__name__)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 5432
SSH_PORT = 22
PG_OS_USER = "postgres"
#: The Python Ansible runs its modules with on the lab hosts.
TARGET_PYTHON = "/usr/bin/python3"
HOSTS = ("prod", "dr", "copy")
#: inventory group of each host (the playbooks address hosts by group)
GROUPS = {"prod": "primary", "dr": "standby", "copy": "copy"}
LAN_IF = "lan0"
MGMT_IF = "mgmt0"
REPL_IF = "repl0"
BLOCK_PREFIX = 28
MARKERS_DDL = ("CREATE TABLE IF NOT EXISTS dr_markers (drill integer NOT NULL, seq integer NOT NULL, "
               "written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (drill, seq))")
#: environment of the commands the lab runs in its namespaces (no PG* or ECOCLOUD_* variable leaks in)
_CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
              "LANG": "C"}
#: server settings of every instance (the per-host ones are in DRLab._pg_config)
_PG_COMMON = """\
max_connections = 30
shared_buffers = 16MB
dynamic_shared_memory_type = posix
wal_level = replica
wal_log_hints = on
# a process crash (kill -9) loses nothing without fsync; only a machine crash would
fsync = off
max_wal_senders = 6
max_replication_slots = 6
wal_keep_size = 64MB
max_wal_size = 64MB
min_wal_size = 32MB
hot_standby = on
# failures are noticed within seconds, a reconnection is tried every second
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
log_line_prefix = '%m [%p] %q%a '
log_timezone = 'UTC'
timezone = 'UTC'
lc_messages = 'C'
"""
_TOOLS = ("ip", "sshd", "ssh-keygen", "unshare", "nsenter", "runuser", "arping")


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")


class DRLab:
    """Production, DR and copy hosts with PostgreSQL and sshd in network namespaces, reachable from the host.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Requires root. See the module docstring.
    """

    def __init__(self, name: str = "ecodr", workdir: Path | None = None) -> None:
        """Plan the lab (nothing is created before :meth:`start`); ``name``: lowercase letters/digits, ≤ 10."""
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", name):
            raise ValueError(f"invalid lab name {name!r} (lowercase letters/digits, at most 10)")
        self.name = name
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self._own_workdir = False
        self.network: ipaddress.IPv4Network | None = None
        self._addr: dict[str, str] = {}
        self._ns = {part: f"{name}-{part}" for part in ("sw", *HOSTS)}
        self._lan_if = f"{name}-lan"
        self._mgmt_if = f"{name}-mgmt"
        self._sshd: dict[str, subprocess.Popen[bytes]] = {}
        self._sshd_path = ""
        self._started = False

    # ------------------------------------------------------------------ plan and queries

    def _plan(self, net: ipaddress.IPv4Network) -> dict[str, str]:
        base = net.network_address
        offsets = {"root_lan": 1, "prod": 2, "dr": 3, "vip": 4, "root_mgmt": 9, "copy_mgmt": 10,
                   "dr_repl": 13, "copy_repl": 14}
        return {key: str(base + off) for key, off in offsets.items()}

    def _need_started(self) -> None:
        if not self._started or self.workdir is None or not self._addr:
            raise RuntimeError("the DR lab is not started")

    def _host(self, host: str) -> str:
        if host not in HOSTS:
            raise ValueError(f"unknown lab host {host!r} (one of {', '.join(HOSTS)})")
        return host

    def address(self, host: str) -> str:
        """The address the platform reaches ``host`` on (SSH, PostgreSQL): prod/DR on the LAN, the copy on its
        management link."""
        self._need_started()
        return self._addr["copy_mgmt" if self._host(host) == "copy" else host]

    @property
    def vip(self) -> str:
        """The service address."""
        self._need_started()
        return self._addr["vip"]

    def namespace(self, host: str) -> str:
        """The network namespace of ``host`` (``<name>-<host>``)."""
        return self._ns[self._host(host)]

    def _dsn(self, address: str) -> str:
        return f"host={address} port={PG_PORT} user=postgres dbname=postgres connect_timeout=2"

    @property
    def primary_dsn(self) -> str:
        """libpq DSN of the production host's own address."""
        return self._dsn(self.address("prod"))

    @property
    def dr_dsn(self) -> str:
        """libpq DSN of the DR host's own address."""
        return self._dsn(self.address("dr"))

    @property
    def copy_dsn(self) -> str:
        """libpq DSN of the copy host's management address."""
        return self._dsn(self.address("copy"))

    @property
    def service_dsn(self) -> str:
        """libpq DSN of the VIP (whoever holds it serves)."""
        return self._dsn(self.vip)

    def _host_dir(self, host: str) -> Path:
        assert self.workdir is not None
        return self.workdir / host

    def _data_dir(self, host: str) -> Path:
        return self._host_dir(host) / "data"

    def vip_holder(self) -> str | None:
        """``"prod"`` or ``"dr"``: which host has the VIP on its LAN interface (and that interface up) now, None
        if neither.

        Raises RuntimeError if both have it (a split brain: e.g. a disaster failover could not reach production
        to drop it, and production's link came back; dr_failback resolves it).
        """
        self._need_started()
        holders = [host for host in ("prod", "dr") if self._has_vip(host, live=True)]
        if len(holders) > 1:
            raise RuntimeError(f"split brain: both prod and dr hold the VIP {self.vip}")
        return holders[0] if holders else None

    def _has_vip(self, host: str, *, live: bool = False) -> bool:
        """Whether the VIP is on the host's LAN interface (``live``: and that interface is up)."""
        out = _run(["ip", "-n", self._ns[host], "-j", "-4", "addr", "show", "dev", LAN_IF]).stdout
        return any(info.get("local") == self._addr["vip"] and (not live or "UP" in iface.get("flags", []))
                   for iface in json.loads(out or "[]") for info in iface.get("addr_info", []))

    def role_of(self, host: str) -> str:
        """``"primary"``, ``"standby"`` (in recovery) or ``"down"`` (not accepting connections: stopped, crashed,
        starting or shutting down), asked over the host's own address."""
        self._need_started()
        try:
            with psycopg.connect(self._dsn(self.address(host)), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return "down"
        return "standby" if row and row[0] else "primary"

    def inventory(self) -> dict[str, Any]:
        """An Ansible YAML inventory (as a mapping) of the lab: groups ``primary`` (host ``<name>-prod``),
        ``standby`` (``<name>-dr``) and ``copy`` (``<name>-copy``), the hosts named like their namespaces and
        hostnames; SSH as root with the lab key, host keys checked against the lab's ``known_hosts``; and every
        variable the ``dr_*`` playbooks use (see ``playbooks/README.md``)."""
        self._need_started()
        assert self.workdir is not None
        ssh_dir = self.workdir / "ssh"

        def host_vars(host: str) -> dict[str, Any]:
            hdir = self._host_dir(host)
            out: dict[str, Any] = {
                "ansible_host": self.address(host),
                "pg_cluster_name": host,
                "pg_conf_dir": str(hdir),
                "pg_data_dir": str(hdir / "data"),
                "pg_socket_dir": str(hdir / "run"),
                "pg_log_file": str(hdir / "postgresql.log"),
                "pg_slot_name": f"{host}_slot",
            }
            if host in ("prod", "dr"):
                out["lan_address"] = self._addr[host]
            if host in ("dr", "copy"):
                out["repl_address"] = self._addr[f"{host}_repl"]
            if host == "copy":
                out["mgmt_address"] = self._addr["copy_mgmt"]
            return out

        return {"all": {
            "children": {GROUPS[h]: {"hosts": {self._ns[h]: host_vars(h)}} for h in HOSTS},
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(ssh_dir / "id_ed25519"),
                "ansible_ssh_common_args": (f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={ssh_dir}/known_hosts"
                                            " -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
                                            " -o BatchMode=yes -o ServerAliveInterval=2 -o ServerAliveCountMax=2"),
                # a host cut off is declared unreachable after 5 s (not Ansible's default 10 s)
                "ansible_ssh_timeout": 5,
                # one master connection per host, its socket in the lab (stop() ends them)
                "ansible_ssh_args": (f"-o ControlMaster=auto -o ControlPersist=60s "
                                     f"-o ControlPath={ssh_dir}/cp-%C"),
                "ansible_ssh_pipelining": True,
                "ansible_python_interpreter": TARGET_PYTHON,
                "ansible_remote_tmp": str(self.workdir / "ansible-tmp"),
                "pg_bin_dir": str(PG_BIN),
                "pg_port": PG_PORT,
                "pg_os_user": PG_OS_USER,
                "pg_superuser": "postgres",
                "vip_address": self._addr["vip"],
                "vip_prefixlen": 32,
                "lan_interface": LAN_IF,
                "lab_network": str(self.network),
            },
        }}

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> DRLab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Build the namespaces, links and addresses, start sshd and PostgreSQL (prod primary holding the VIP,
        DR streaming) and wait until DR is caught up.

        Raises RuntimeError (naming the failed command and its output) when anything fails; the partly built lab
        is then removed again.
        """
        if self._started:
            raise RuntimeError("the DR lab is already started")
        if os.geteuid() != 0:
            raise RuntimeError("DRLab needs root (network namespaces, veths, sshd, PostgreSQL as postgres)")
        missing = [t for t in _TOOLS if _which(t) is None]
        missing += [str(PG_BIN / b) for b in ("initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "postgres")
                    if not (PG_BIN / b).exists()]
        if missing:
            raise RuntimeError(f"DRLab needs {', '.join(missing)} (Debian packages iproute2 openssh-server "
                               "openssh-client util-linux postgresql-15 iputils-arping)")
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise RuntimeError(f"the OS user {PG_OS_USER!r} does not exist (Debian package postgresql-15)") from None
        t0 = time.monotonic()
        self._claim_network()
        self._started = True
        atexit.register(self.stop)
        try:
            self._prepare_workdir()
            initdb = self._spawn_initdb()
            self._build_network()
            log.debug("drlab %s: network built in %.2fs", self.name, time.monotonic() - t0)
            for host in HOSTS:
                self._start_sshd(host)
            if initdb.wait(60) != 0:
                raise RuntimeError(f"initdb failed: {_log_tail(self._host_dir('prod') / 'initdb.log')}")
            self._write_data_config()
            self._wait_sshd()
            log.debug("drlab %s: sshd listening at %.2fs", self.name, time.monotonic() - t0)
            self._pg_ctl("prod", "start")
            self._setup_primary()
            self._clone_standby()
            self._pg_ctl("dr", "start")
            self._vip_add("prod")
            self._wait_streaming(timeout=20)
        except BaseException:
            self.stop()
            raise
        log.info("drlab %s: up in %.2fs on %s", self.name, time.monotonic() - t0, self.network)

    def _claim_network(self) -> None:
        """Refuse leftovers of a crashed run, pick a free /28 and register it (before anything is created)."""
        stale = [ns for ns in self._ns.values() if ns in _list_netns()]
        stale += [i for i in (self._lan_if, self._mgmt_if) if Path(f"/sys/class/net/{i}").exists()]
        if stale:
            raise RuntimeError(f"DR lab {self.name!r} already exists ({', '.join(stale)}); another run is active or "
                               f"crashed: DRLab.cleanup_stale({self.name!r}) removes it")
        taken = [net for net, _owner in _occupied()]
        for candidate in reversed(list(LAB_RANGE.subnets(new_prefix=BLOCK_PREFIX))):
            if not any(candidate.overlaps(net) for net in taken):
                break
        else:
            raise RuntimeError(f"no free /{BLOCK_PREFIX} left in {LAB_RANGE} on this host")
        self.network = candidate
        self._addr = self._plan(candidate)
        register_lab(self.name, str(candidate), [str(candidate)], kind="drlab")

    def _prepare_workdir(self) -> None:
        self.workdir, self._own_workdir = lab_workdir(f"drlab-{self.name}", self._workdir_arg)
        self.workdir.chmod(0o755)  # postgres must reach its directories below
        ssh_dir = self.workdir / "ssh"
        if ssh_dir.exists():
            shutil.rmtree(ssh_dir)
        ssh_dir.mkdir(mode=0o700)
        (self.workdir / "ansible-tmp").mkdir(mode=0o700, exist_ok=True)
        pg = pwd.getpwnam(PG_OS_USER)
        for host in HOSTS:
            hdir = self._host_dir(host)
            if hdir.exists():
                shutil.rmtree(hdir)
            (hdir / "run").mkdir(parents=True)
            (hdir / "postgresql.conf").write_text(self._pg_config(host))
            (hdir / "pg_hba.conf").write_text(self._pg_hba())
            (hdir / "pg_ident.conf").write_text("")
            for path in (hdir, hdir / "run"):
                os.chown(path, pg.pw_uid, pg.pw_gid)
            hdir.chmod(0o755)
            (hdir / "run").chmod(0o700)

    def _pg_config(self, host: str) -> str:
        """The host's server configuration (``<workdir>/<host>/postgresql.conf``, outside the data directory)."""
        hdir = self._host_dir(host)
        lines = [
            f"# generated by ecocloud_ops.lab.drlab for lab {self.name}, host {host}",
            f"data_directory = '{hdir / 'data'}'",
            f"hba_file = '{hdir / 'pg_hba.conf'}'",
            f"ident_file = '{hdir / 'pg_ident.conf'}'",
            f"cluster_name = '{host}'",
            "listen_addresses = '*'",
            f"port = {PG_PORT}",
            f"unix_socket_directories = '{hdir / 'run'}'",
        ]
        peer = {"prod": "dr", "dr": "prod"}.get(host)
        if peer is not None:  # used only while standby.signal exists
            lines += [f"primary_conninfo = 'host={self._addr[peer]} port={PG_PORT} user=postgres "
                      f"application_name={host} connect_timeout=2'",
                      f"primary_slot_name = '{host}_slot'"]
        return "\n".join(lines) + "\n" + _PG_COMMON

    def _write_data_config(self) -> None:
        """prod's data directory gets the common settings only (base backups copy it to the other hosts): the
        servers never read it, but pg_rewind's single-user crash recovery of a data directory does."""
        path = self._data_dir("prod") / "postgresql.conf"
        path.write_text("# generated by ecocloud_ops.lab.drlab: the servers read <host dir>/postgresql.conf; this "
                        "file serves\n# single-user runs on the data directory (pg_rewind's crash recovery)\n"
                        + _PG_COMMON)

    def _pg_hba(self) -> str:
        return ("# generated by ecocloud_ops.lab.drlab: trust inside the lab only\n"
                "local all all trust\n"
                "local replication all trust\n"
                f"host all all {self.network} trust\n"
                f"host replication all {self.network} trust\n")

    def _spawn_initdb(self) -> subprocess.Popen[bytes]:
        hdir = self._host_dir("prod")
        with (hdir / "initdb.log").open("wb") as out:
            return subprocess.Popen(
                ["runuser", "-u", PG_OS_USER, "--", str(PG_BIN / "initdb"), "-D", str(hdir / "data"), "-U", "postgres",
                 "-A", "trust", "-E", "UTF8", "--locale=C", "--data-checksums", "--no-sync"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/", env=_CLEAN_ENV)

    def _build_network(self) -> None:
        assert self.workdir is not None
        ns = self._ns
        _run(["ip", "-batch", "-"], input_text="\n".join([
            *(f"netns add {n}" for n in ns.values()),
            f"link add {self._lan_if} type veth peer name p-host netns {ns['sw']}",
            f"link add {LAN_IF} netns {ns['prod']} type veth peer name p-prod netns {ns['sw']}",
            f"link add {LAN_IF} netns {ns['dr']} type veth peer name p-dr netns {ns['sw']}",
            f"link add {self._mgmt_if} type veth peer name {MGMT_IF} netns {ns['copy']}",
            f"link add {REPL_IF} netns {ns['dr']} type veth peer name {REPL_IF} netns {ns['copy']}",
        ]) + "\n")
        a, net = self._addr, self.network
        assert net is not None
        lan = f"/{net.prefixlen + 1}"
        batches = {
            "sw": ["link add br0 type bridge stp_state 0 forward_delay 0", "link set br0 up", "link set lo up",
                   *(f"link set {p} master br0" for p in ("p-host", "p-prod", "p-dr")),
                   *(f"link set {p} up" for p in ("p-host", "p-prod", "p-dr"))],
            "prod": ["link set lo up", f"addr add {a['prod']}{lan} dev {LAN_IF}", f"link set {LAN_IF} up"],
            "dr": ["link set lo up", f"addr add {a['dr']}{lan} dev {LAN_IF}", f"link set {LAN_IF} up",
                   f"addr add {a['dr_repl']}/30 dev {REPL_IF}", f"link set {REPL_IF} up"],
            "copy": ["link set lo up", f"addr add {a['copy_mgmt']}/30 dev {MGMT_IF}", f"link set {MGMT_IF} up",
                     f"addr add {a['copy_repl']}/30 dev {REPL_IF}", f"link set {REPL_IF} up"],
        }
        setup = ("echo 0 > /proc/sys/net/ipv4/ip_forward && "
                 "if [ -d /proc/sys/net/ipv6 ]; then echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                 "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; fi && exec ip -batch -")
        ssh_dir = self.workdir / "ssh"
        jobs: list[tuple[list[str], str | None]] = [
            (["ip", "netns", "exec", ns[part], "sh", "-c", setup], "\n".join(lines) + "\n")
            for part, lines in batches.items()]
        jobs += [(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{self.name}-{key}", "-f",
                    str(ssh_dir / (f"{key}_host_ed25519_key" if key in HOSTS else "id_ed25519"))], None)
                 for key in (*HOSTS, "client")]
        _run_parallel(jobs)
        for iface, setting, value in ((self._lan_if, "ipv6/conf/{}/disable_ipv6", "1"),
                                      (self._mgmt_if, "ipv6/conf/{}/disable_ipv6", "1"),
                                      (self._lan_if, "ipv4/conf/{}/arp_accept", "1")):
            try:
                Path("/proc/sys/net/" + setting.format(iface)).write_text(value + "\n")
            except OSError:
                pass
        _run(["ip", "-batch", "-"], input_text=(
            f"addr add {a['root_lan']}{lan} dev {self._lan_if}\n"
            f"link set {self._lan_if} up\n"
            f"addr add {a['root_mgmt']}/30 dev {self._mgmt_if}\n"
            f"link set {self._mgmt_if} up\n"
            f"route add blackhole {net}\n"))
        (ssh_dir / "authorized_keys").write_text((ssh_dir / "id_ed25519.pub").read_text())
        (ssh_dir / "known_hosts").write_text("".join(
            f"{self.address(h)} {' '.join((ssh_dir / f'{h}_host_ed25519_key.pub').read_text().split()[:2])}\n"
            for h in HOSTS))

    # ------------------------------------------------------------------ sshd

    def _sshd_config(self, host: str) -> str:
        assert self.workdir is not None
        ssh_dir = self.workdir / "ssh"
        return (f"# generated by ecocloud_ops.lab.drlab for lab {self.name}, host {host}\n"
                f"ListenAddress {self.address(host)}:{SSH_PORT}\n"
                f'HostKey "{ssh_dir / f"{host}_host_ed25519_key"}"\n'
                f'PidFile "{ssh_dir / f"{host}_sshd.pid"}"\n'
                f'AuthorizedKeysFile "{ssh_dir / "authorized_keys"}"\n'
                "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                # the lab's files live under /tmp (world-writable): StrictModes would refuse the key
                "StrictModes no\n"
                "UseDNS no\nPrintMotd no\nPrintLastLog no\n"
                "MaxStartups 100:30:200\nMaxSessions 50\nLoginGraceTime 30\n"
                "Subsystem sftp internal-sftp\n")

    def _start_sshd(self, host: str) -> None:
        # sshd is the init of its own PID namespace (with a private /proc): it reaps the session processes and
        # the PostgreSQL servers started there; when it exits, the kernel kills whatever is left.
        assert self.workdir is not None
        if not self._sshd_path:
            path = _which("sshd")
            assert path is not None
            self._sshd_path = os.path.abspath(path)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        conf = self.workdir / "ssh" / f"{host}_sshd_config"
        conf.write_text(self._sshd_config(host))
        script = (f"hostname {shlex.quote(self._ns[host])} && "
                  f"exec {shlex.quote(self._sshd_path)} -D -e -f {shlex.quote(str(conf))}")
        with (self.workdir / "ssh" / f"{host}_sshd.log").open("ab") as out:
            self._sshd[host] = subprocess.Popen(
                ["ip", "netns", "exec", self._ns[host], "unshare", "--uts", "--pid", "--mount-proc", "--fork",
                 "--kill-child", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _sshd_pid(self, host: str) -> int:
        """The pid (in the root PID namespace) of the host's sshd: the namespace's init."""
        proc = self._sshd.get(host)
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"the sshd of {host} is not running")
        deadline = time.monotonic() + 5
        while not (kids := _children(proc.pid)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the sshd of {host} did not start")
            time.sleep(0.01)
        return kids[0]

    def _wait_sshd(self, timeout: float = 10) -> None:
        """Wait until each sshd listens (its namespace's /proc/<pid>/net/tcp: no connection made)."""
        assert self.workdir is not None
        pending = set(HOSTS)
        deadline = time.monotonic() + timeout
        while pending:
            for host in sorted(pending):
                if self._sshd[host].poll() is not None:
                    raise RuntimeError(f"sshd of {host} exited: "
                                       f"{_log_tail(self.workdir / 'ssh' / f'{host}_sshd.log', 600)}")
                packed = socket.inet_aton(self.address(host))
                local = f"{int.from_bytes(packed, sys.byteorder):08X}:{SSH_PORT:04X}"
                try:
                    table = Path(f"/proc/{self._sshd[host].pid}/net/tcp").read_text()
                except OSError:
                    continue
                if any(c[1] == local and c[3] == "0A" for c in (ln.split() for ln in table.splitlines()[1:])):
                    pending.discard(host)
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd not listening after {timeout:.0f}s: {', '.join(sorted(pending))}")
                time.sleep(0.02)

    # ------------------------------------------------------------------ PostgreSQL

    def _in_host(self, host: str, cmd: list[str], *, as_postgres: bool = False, check: bool = True,
                 timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host's namespaces (network, PID, mount, UTS: as if started over SSH)."""
        argv = ["nsenter", "-t", str(self._sshd_pid(host)), "-n", "-p", "-m", "-u", "--wd=/", "--"]
        if as_postgres:
            argv += ["runuser", "-u", PG_OS_USER, "--"]
        return _run(argv + cmd, check=check, env=_CLEAN_ENV, timeout=timeout)

    def _pg_ctl(self, host: str, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        hdir = self._host_dir(host)
        extra = ["-l", str(hdir / "postgresql.log")] if action == "start" else []
        try:
            return self._in_host(host, [str(PG_BIN / "pg_ctl"), action, "-D", str(hdir), "-s", "-w", "-t", "60",
                                        *extra, *args], as_postgres=True, check=check)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{host} server log: {_log_tail(hdir / 'postgresql.log', 1200)}") from None

    def _pg_running(self, host: str) -> bool:
        if not (self._data_dir(host) / "PG_VERSION").exists():
            return False
        return self._pg_ctl(host, "status", check=False).returncode == 0

    def _kill_postgres(self, host: str) -> None:
        """SIGKILL every PostgreSQL process in the host's namespace (what an unclean stop leaves)."""
        key = _netns_key(f"/run/netns/{self._ns[host]}")
        victims: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if (_netns_key(f"/proc/{entry.name}/ns/net") == key
                        and os.readlink(f"/proc/{entry.name}/exe") == str(PG_BIN / "postgres")):
                    victims[int(entry.name)] = 0
            except OSError:
                continue
        if victims:
            _kill_leaves_first(victims)

    def _stop_pg(self, host: str) -> None:
        """Stop the host's server at once (immediate shutdown; killed if that fails). Nothing if not running."""
        if self._pg_running(host) and self._pg_ctl(host, "stop", "-m", "immediate", check=False).returncode != 0:
            log.warning("drlab %s: immediate stop of %s failed, killing it", self.name, host)
        self._kill_postgres(host)

    def _sql(self, host: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self._dsn(self.address(host)), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def _setup_primary(self) -> None:
        """The table for drill markers and DR's replication slot (both idempotent)."""
        self._sql("prod", MARKERS_DDL)
        self._sql("prod", "SELECT pg_create_physical_replication_slot('dr_slot', true) WHERE NOT EXISTS "
                          "(SELECT 1 FROM pg_replication_slots WHERE slot_name = 'dr_slot')")

    def _clone_standby(self) -> None:
        """DR's data directory afresh: a base backup of prod through dr_slot, plus standby.signal."""
        data = self._data_dir("dr")
        if data.exists():
            shutil.rmtree(data)
        self._in_host("dr", [str(PG_BIN / "pg_basebackup"), "-D", str(data), "-d",
                             f"host={self._addr['prod']} port={PG_PORT} user=postgres application_name=dr",
                             "-X", "stream", "-S", "dr_slot", "-c", "fast", "--no-sync"], as_postgres=True)
        signal_file = data / "standby.signal"
        signal_file.write_text("")
        pg = pwd.getpwnam(PG_OS_USER)
        os.chown(signal_file, pg.pw_uid, pg.pw_gid)

    def _vip_add(self, host: str) -> None:
        if not self._has_vip(host):
            _run(["ip", "-n", self._ns[host], "addr", "add", f"{self._addr['vip']}/32", "dev", LAN_IF])
        # gratuitous ARP: the root namespace's neighbour entry follows at once
        _run(["ip", "netns", "exec", self._ns[host], "arping", "-q", "-U", "-c", "1", "-I", LAN_IF,
              self._addr["vip"]], check=False)

    def _vip_del(self, host: str) -> None:
        if self._has_vip(host):
            _run(["ip", "-n", self._ns[host], "addr", "del", f"{self._addr['vip']}/32", "dev", LAN_IF])

    def _replication(self) -> tuple[str, int] | None:
        """(state, replay lag in bytes) of DR in prod's pg_stat_replication, or None when not connected."""
        try:
            rows = self._sql("prod", "SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                                     "FROM pg_stat_replication WHERE application_name = 'dr'")
        except psycopg.Error:
            return None
        return (str(rows[0][0]), int(rows[0][1] if rows[0][1] is not None else 1)) if rows else None

    def _wait_streaming(self, timeout: float) -> None:
        """Wait until DR streams from prod and has replayed all of prod's WAL."""
        deadline = time.monotonic() + timeout
        while True:
            rep = self._replication()
            if rep is not None and rep[0] == "streaming" and rep[1] <= 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dr is not streaming from prod and caught up after {timeout:.0f}s ({rep}); "
                                   f"dr server log: {_log_tail(self._host_dir('dr') / 'postgresql.log', 1200)}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ reset

    def _initial(self) -> bool:
        """Whether the lab is in its initial state (DR possibly not yet caught up)."""
        if (self._data_dir("copy").exists() or self.role_of("copy") != "down" or self.role_of("prod") != "primary"
                or self.role_of("dr") != "standby"):
            return False
        try:
            if self.vip_holder() != "prod":
                return False
        except RuntimeError:
            return False
        rep = self._replication()
        return rep is not None and rep[0] == "streaming"

    def reset(self) -> None:
        """Back to the initial state: prod the primary holding the VIP, DR a hot standby streaming from prod and
        caught up, the copy stopped and its data removed. Nearly instant when the lab is already there.

        Links a drill took down are brought up again, an sshd that died is restarted (the servers of its host
        died with it). prod keeps its data (it is started, and promoted if it was a
        standby; recreated from scratch only if it cannot start); DR is rebuilt from a base backup of prod unless
        it already streams from it. Raises RuntimeError if the lab cannot be brought back.
        """
        self._need_started()
        t0 = time.monotonic()
        self._links_up()
        dead = [h for h in HOSTS if h not in self._sshd or self._sshd[h].poll() is not None]
        for host in dead:
            log.warning("drlab %s: the sshd of %s had died: restarting it", self.name, host)
            self._sshd.pop(host, None)
            self._start_sshd(host)
        if dead:
            self._wait_sshd()
        if self._initial():
            self._wait_streaming(timeout=10)
            return
        self._stop_pg("copy")
        shutil.rmtree(self._data_dir("copy"), ignore_errors=True)
        prod_ok = self.role_of("prod") == "primary" and not (self.role_of("dr") == "primary" and self._has_vip("dr"))
        if not prod_ok:
            self._vip_del("dr")
            self._stop_pg("dr")
            self._make_prod_primary()
        self._vip_del("dr")
        self._vip_add("prod")
        self._setup_primary()
        rep = self._replication()
        if prod_ok and self.role_of("dr") == "standby":
            deadline = time.monotonic() + 3
            while (rep is None or rep[0] != "streaming") and time.monotonic() < deadline:
                time.sleep(0.1)
                rep = self._replication()
        if rep is None or rep[0] != "streaming":
            self._stop_pg("dr")
            self._clone_standby()
            self._pg_ctl("dr", "start")
        self._wait_streaming(timeout=20)
        log.info("drlab %s: reset in %.2fs", self.name, time.monotonic() - t0)

    def _links_up(self) -> None:
        links = {"sw": ["br0", "p-host", "p-prod", "p-dr"], "prod": [LAN_IF], "dr": [LAN_IF, REPL_IF],
                 "copy": [MGMT_IF, REPL_IF]}
        for part, names in links.items():
            _run(["ip", "-n", self._ns[part], "-batch", "-"], input_text="".join(f"link set {n} up\n" for n in names))
        _run(["ip", "-batch", "-"], input_text=f"link set {self._lan_if} up\nlink set {self._mgmt_if} up\n")

    def _make_prod_primary(self) -> None:
        """Start prod (as it is) and promote it if it comes up in recovery; initdb afresh if it cannot start."""
        if self._pg_running("prod") and self.role_of("prod") == "down":
            self._stop_pg("prod")  # running but not accepting connections (stuck in recovery): restart it
        if not self._pg_running("prod"):
            self._kill_postgres("prod")
            if self._pg_ctl("prod", "start", check=False).returncode != 0 or self.role_of("prod") == "down":
                log.warning("drlab %s: prod does not start: recreating its data directory", self.name)
                self._stop_pg("prod")
                shutil.rmtree(self._data_dir("prod"), ignore_errors=True)
                initdb = self._spawn_initdb()
                if initdb.wait(60) != 0:
                    raise RuntimeError(f"initdb failed: {_log_tail(self._host_dir('prod') / 'initdb.log')}")
                self._write_data_config()
                self._pg_ctl("prod", "start")
        if self.role_of("prod") == "standby":
            self._pg_ctl("prod", "promote")
        if self.role_of("prod") != "primary":
            raise RuntimeError(f"prod does not come up as primary; server log: "
                               f"{_log_tail(self._host_dir('prod') / 'postgresql.log', 1200)}")

    # ------------------------------------------------------------------ teardown

    def stop(self) -> None:
        """Kill and reap everything the lab started (PostgreSQL started over SSH included), delete its namespaces,
        veths and route, unregister its block. Idempotent; safe after a failed start; never raises."""
        if not self._started:
            return
        t0 = time.monotonic()
        for host in HOSTS:  # an orderly immediate shutdown also removes the servers' System V shared memory
            try:
                if host in self._sshd and self._sshd[host].poll() is None and self.workdir is not None:
                    self._stop_pg(host)
            except Exception:
                log.warning("drlab %s: stopping PostgreSQL on %s failed", self.name, host, exc_info=True)
        try:
            self._terminate_sshd()
        except Exception:
            log.exception("drlab %s: stopping sshd failed", self.name)
        self._sshd.clear()
        try:
            _teardown(self.name, self.network)
        except Exception:
            log.exception("drlab %s: removing the network failed", self.name)
        if self.workdir is not None:
            _kill_ssh_masters(self.workdir)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        _unregister(self.name, os.getpid())
        self._started = False
        atexit.unregister(self.stop)
        log.info("drlab %s: stopped in %.2fs", self.name, time.monotonic() - t0)

    def _terminate_sshd(self) -> None:
        procs = list(self._sshd.values())
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            for proc in procs:
                if proc.poll() is None:
                    for pid in _children(proc.pid) or [proc.pid]:  # unshare ignores SIGTERM: signal its sshd
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            pass
            deadline = time.monotonic() + grace
            for proc in procs:
                try:
                    proc.wait(max(0.01, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            if all(proc.poll() is not None for proc in procs):
                return
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                log.error("drlab %s: pid %s does not die", self.name, proc.pid)

    @staticmethod
    def cleanup_stale(name: str = "ecodr") -> None:
        """Remove what a crashed earlier run of a lab called ``name`` left: processes in its namespaces (sshd,
        PostgreSQL), the namespaces, the host veths, its route and registry entry, its SSH master connections
        and the temporary workdirs of dead owners. Do not call it while a lab of that name is running."""
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", name):
            raise ValueError(f"invalid lab name {name!r}")
        network: ipaddress.IPv4Network | None = None
        try:
            entry = json.loads((_REGISTRY / f"{name}.json").read_text())
            if entry.get("kind") == "drlab":
                network = ipaddress.IPv4Network(entry["network"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        _teardown(name, network)
        if network is not None:  # the entry is a DR lab's (a NetLab of that name keeps its own)
            _unregister(name, None)
        for workdir in Path(tempfile.gettempdir()).glob(f"drlab-{name}-*"):
            try:
                owner = int((workdir / "owner.pid").read_text())
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner) and owner != os.getpid():
                continue
            _kill_ssh_masters(workdir)
            shutil.rmtree(workdir, ignore_errors=True)


def _teardown(name: str, network: ipaddress.IPv4Network | None) -> None:
    """Kill what runs in the lab's namespaces, delete them, the host veths and the blackhole route."""
    namespaces = [ns for ns in (f"{name}-{part}" for part in ("sw", *HOSTS)) if ns in _list_netns()]
    _remove_namespaces(namespaces, f"{name}-lan")
    if Path(f"/sys/class/net/{name}-mgmt").exists():
        _run(["ip", "link", "del", f"{name}-mgmt"], check=False)
    if network is not None:
        _run(["ip", "route", "del", "blackhole", str(network)], check=False)


def _kill_ssh_masters(workdir: Path) -> None:
    """Kill the SSH master connections (ControlPersist) Ansible left with their sockets in the lab's workdir."""
    marker = str(workdir / "ssh" / "cp-").encode()
    victims: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    victims[int(entry.name)] = 0
            except OSError:
                continue
    if victims:
        _kill_leaves_first(victims)
