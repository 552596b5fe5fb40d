"""A network-namespace lab of the agency's four-level dedicated network (ministry → provinces → cities → counties).

Used by the network poller's integration tests and by the product's demo command. Everything runs on this
machine: one Linux network namespace per site, veth pairs along the tree, one net-snmp ``snmpd`` and one
OpenSSH ``sshd`` per site, all started in the foreground as children of this process and reaped by
:meth:`NetLab.stop`. Needs root and the Debian packages ``iproute2 snmpd snmp openssh-server openssh-client
util-linux passwd`` (``sshpass`` and ``iputils-ping`` only for tests that drive the CLI tools).

Address plan (only the RFC 2544 benchmarking range 198.18.0.0/15, or a part of it given as ``network``):

* the lower half of ``network`` holds the /30 links: link *i* belongs to the site with depth-first index *i*
  (the ministry is index 0 and its link goes to the host: ``.1`` is the host, ``.2`` the ministry); for the
  other sites ``.1`` is the parent's side and ``.2`` the child's side;
* the upper half holds the site management addresses (a /32 on the site's ``lo``), numbered in depth-first
  order and skipping ``x.x.x.0``/``x.x.x.255``. A subtree therefore occupies one contiguous range of site
  addresses and one of links: every parent routes a child subtree with a handful of CIDR prefixes;
* the host (root namespace) gets one veth ``<name>-lab`` to the ministry and one route for ``network``.
  The ministry has no default route, so nothing from the lab can leave the machine.

Several labs can run at once (a demo and a test run): each registers its network and the prefixes it really
uses in ``/run/ecocloud-netlab/<name>.json``; a new lab is refused only where it would overlap those (or any
other route/address of the host). ``network="auto"`` picks a free block sized for the tree.

Interfaces inside a site namespace: ``lo`` (the site address), ``up-<parent code>`` (``up-host`` for the
ministry) towards the parent and ``dn-<child code>`` towards each child.

snmpd: ``snmpd -C`` would also skip the persistent file (engineBoots and the engine ID would be new at every
agent restart), so the agents run without ``-C`` but with ``SNMPCONFPATH`` set to the site's own config and
persistent directories, which keeps ``/etc/snmp`` and ``/var/lib/snmp`` out of the picture (SMUX is off).
Debian's net-snmp 5.9.3 accepts ``SHA-256``/``SHA256`` and ``AES-256``/``AES256`` in ``createUser`` (this
module writes the hyphenated forms, which the CLI's ``-a``/``-x`` also use). Its ``AES-192``/``AES-256``
extend a short key the Blumenthal way (pysnmp ``usmAesBlumenthalCfb256Protocol``): with SHA-256 (or
longer) auth the Blumenthal and Reeder/Cisco variants give the same key, with SHA-1 + AES-256 only Blumenthal
works. The agents cache the interface table for about 3 s: after :meth:`NetLab.cut` the parent's agent shows
the downlink's ifOperStatus down(2) up to ~3 s later (and up again as late): poll, don't assert at once.

sshd: each runs in its own UTS and PID namespace (``uname -n`` answers ``site-<code>``; sshd is the init of
its PID namespace, so session processes are reaped), ed25519 host key only, ``UsePAM no`` with password login
for ``ssh_user`` (created without a home directory).
"""

from __future__ import annotations

import atexit
import base64
import errno
import hashlib
import ipaddress
import json
import logging
import os
import pwd
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

#: RFC 2544 benchmarking range: the only addresses the lab ever uses.
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
SNMP_PORT = 161
SSH_PORT = 22
#: A closed TCP port used to test reachability: the kernel answers with a RST, no process involved.
_PROBE_PORT = 9
_NETNS_DIR = Path("/run/netns")
#: running labs register their network and used prefixes here, so labs can share 198.18.0.0/15
_REGISTRY = Path("/run/ecocloud-netlab")
_SYS_NAME_OID = bytes([0x2B, 6, 1, 2, 1, 1, 5, 0])  # 1.3.6.1.2.1.1.5.0

#: accepted spellings → net-snmp spelling (createUser and the -a/-x options of the CLI tools)
_AUTH_PROTOCOLS = {
    "MD5": "MD5", "SHA": "SHA", "SHA1": "SHA", "SHA-1": "SHA",
    "SHA224": "SHA-224", "SHA-224": "SHA-224", "SHA256": "SHA-256", "SHA-256": "SHA-256",
    "SHA384": "SHA-384", "SHA-384": "SHA-384", "SHA512": "SHA-512", "SHA-512": "SHA-512",
}
_PRIV_PROTOCOLS = {
    "DES": "DES", "AES": "AES", "AES128": "AES", "AES-128": "AES",
    "AES192": "AES-192", "AES-192": "AES-192", "AES256": "AES-256", "AES-256": "AES-256",
}

_NS_SETUP_SCRIPT = (
    "echo 1 > /proc/sys/net/ipv4/ip_forward && "
    "if [ -d /proc/sys/net/ipv6 ]; then echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; fi && exec ip -batch -"
)


@dataclass(frozen=True)
class LabSite:
    """One site of the lab tree."""

    code: str  # six-digit site code, e.g. "000000", "130000", "130100", "130102"
    parent: str | None  # parent site code; None only for the ministry (root of the tree)


@dataclass
class _Site:
    """The lab's plan for one site (internal)."""

    code: str
    parent: str | None
    index: int
    ns: str
    address: str
    uplink: str  # interface in this namespace towards the parent
    downlink: str  # interface in the parent's namespace (or the host's, for the ministry) towards this site
    parent_ip: str  # parent's (host's) side of this site's link
    child_ip: str  # this site's side of its link
    children: list[str] = field(default_factory=list)
    last_index: int = 0  # highest depth-first index in this site's subtree
    prefixes: list[ipaddress.IPv4Network] = field(default_factory=list)  # what routes this subtree


def _validate(pattern: str, value: str, what: str) -> None:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"invalid {what}: {value!r}")


def _run(cmd: list[str], *, input_text: str | None = None, check: bool = True,
         env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command; raise RuntimeError (naming the command and its stderr) when it fails and ``check``."""
    try:
        result = subprocess.run(cmd, input=input_text, capture_output=True, text=True, env=env, timeout=timeout,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {exc}") from exc
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")
    return result


def _run_parallel(jobs: list[tuple[list[str], str | None]], limit: int = 16) -> None:
    """Run commands (argv, stdin text) at most ``limit`` at a time; raise RuntimeError on the first failure."""
    failures: list[str] = []
    for start in range(0, len(jobs), limit):
        chunk = jobs[start:start + limit]
        procs = []
        for cmd, _stdin in chunk:
            try:
                procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True))
            except OSError as exc:
                failures.append(f"{shlex.join(cmd)} failed: {exc}")
        for proc, (cmd, stdin) in zip(procs, chunk, strict=False):
            try:
                _out, err = proc.communicate(stdin, timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                failures.append(f"{shlex.join(cmd)} timed out")
                continue
            if proc.returncode != 0:
                failures.append(f"{shlex.join(cmd)} failed (exit {proc.returncode}): {err.strip()}")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise RuntimeError(failures[0] + more)


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _ber_length(len(payload)) + payload


def _snmp_get_sysname(community: str, request_id: int) -> bytes:
    """An SNMPv2c GET of sysName.0, BER-encoded (enough to check an agent answers, without any library)."""
    varbind = _tlv(0x30, _tlv(0x06, _SYS_NAME_OID) + b"\x05\x00")
    pdu = _tlv(0xA0, _tlv(0x02, request_id.to_bytes(4, "big")) + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00")
               + _tlv(0x30, varbind))
    return _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, community.encode()) + pdu)


def _probe_tcp(addresses: list[str], timeout: float) -> set[str]:
    """Return the addresses that answer a TCP connect (accepted or refused) within ``timeout`` seconds."""
    answered: set[str] = set()
    for start in range(0, len(addresses), 256):
        pending: dict[int, tuple[socket.socket, str]] = {}
        sel = selectors.DefaultSelector()
        try:
            for addr in addresses[start:start + 256]:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                err = sock.connect_ex((addr, _PROBE_PORT))
                if err in (0, errno.ECONNREFUSED):
                    answered.add(addr)
                    sock.close()
                elif err == errno.EINPROGRESS:
                    pending[sock.fileno()] = (sock, addr)
                    sel.register(sock, selectors.EVENT_WRITE)
                else:
                    sock.close()
            deadline = time.monotonic() + timeout
            while pending and (remaining := deadline - time.monotonic()) > 0:
                for key, _events in sel.select(remaining):
                    sock, addr = pending.pop(key.fd)
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (0, errno.ECONNREFUSED):
                        answered.add(addr)
                    sel.unregister(sock)
                    sock.close()
        finally:
            for sock, _addr in pending.values():
                sock.close()
            sel.close()
    return answered


def _netns_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pids_in_netns(keys: set[tuple[int, int]]) -> dict[int, int]:
    """Map pid → parent pid of every live process whose network namespace is one of ``keys``."""
    found: dict[int, int] = {}
    if not keys:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        if _netns_key(f"/proc/{entry.name}/ns/net") not in keys:
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[0] != "Z":
            found[int(entry.name)] = stat[1]
    return found


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_leaves_first(pids: dict[int, int]) -> None:
    """SIGKILL processes (pid → ppid), children before their parents so that a live parent can reap them."""
    remaining = dict(pids)
    while remaining:
        parents = set(remaining.values())
        leaves = [pid for pid in remaining if pid not in parents] or list(remaining)
        for pid in leaves:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                log.warning("cannot kill pid %s", pid)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for pid in leaves:
                try:  # reap it if it happens to be our own child
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not any(_alive(pid) for pid in leaves):
                break
            time.sleep(0.02)
        for pid in leaves:
            remaining.pop(pid, None)


def _list_netns() -> list[str]:
    try:
        return sorted(p.name for p in _NETNS_DIR.iterdir())
    except OSError:
        return []


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return "(no log)"
    return data.decode(errors="replace").strip() or "(empty log)"


class NetLab:
    """A tree of network namespaces with one snmpd and one sshd per site, reachable from the host.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Requires root.
    """

    def __init__(self, sites: list[LabSite], *, name: str = "eco", community: str = "lab-community",
                 v3_user: str = "labv3", v3_auth_key: str = "lab-auth-key-1", v3_priv_key: str = "lab-priv-key-1",
                 v3_auth: str = "SHA", v3_priv: str = "AES",
                 ssh_user: str = "ecolab", ssh_password: str = "Lab-Passw0rd-2026", snmp: bool = True,
                 ssh: bool = True, workdir: Path | None = None, network: str = str(LAB_RANGE)) -> None:
        """Plan the lab (nothing is created before :meth:`start`).

        ``network`` is the part of 198.18.0.0/15 this lab uses (labs can run at once on disjoint parts);
        ``"auto"`` picks the highest block of the needed size that nothing on this host routes yet (see
        :meth:`free_network`). Raises ValueError for an invalid tree, name, credential or network, RuntimeError
        when ``"auto"`` finds no free block.
        """
        _validate(r"[a-z][a-z0-9]{0,10}", name, "lab name (lowercase letters/digits, at most 11)")
        _validate(r"[A-Za-z0-9._~+-]{1,64}", community, "community")
        _validate(r"[A-Za-z0-9._-]{1,32}", v3_user, "SNMPv3 user")
        for key in (v3_auth_key, v3_priv_key):
            if len(key) < 8 or any(c in key for c in '"\n\r\\'):
                raise ValueError("SNMPv3 keys need at least 8 characters and no quote, backslash or newline")
        if v3_auth.upper() not in _AUTH_PROTOCOLS:
            raise ValueError(f"unsupported SNMPv3 auth protocol {v3_auth!r} (one of {sorted(_AUTH_PROTOCOLS)})")
        if v3_priv.upper() not in _PRIV_PROTOCOLS:
            raise ValueError(f"unsupported SNMPv3 priv protocol {v3_priv!r} (one of {sorted(_PRIV_PROTOCOLS)})")
        _validate(r"[a-z_][a-z0-9_-]{0,31}", ssh_user, "ssh user")
        if not ssh_password or any(c in ssh_password for c in "\n\r"):
            raise ValueError("ssh password must be non-empty and single-line")
        self._auto_network = network == "auto"
        self._lab_sites = list(sites)
        if self._auto_network:
            network = self.free_network(_network_prefixlen(len(sites)))
        net = ipaddress.IPv4Network(network)
        if not net.subnet_of(LAB_RANGE) or net.prefixlen > 23:
            raise ValueError(f"network {network} must be a /23 or larger inside {LAB_RANGE}")
        self.name = name
        self.network = net
        self.community = community
        self.v3_user = v3_user
        self.v3_auth_key = v3_auth_key
        self.v3_priv_key = v3_priv_key
        self.v3_auth = _AUTH_PROTOCOLS[v3_auth.upper()]
        self.v3_priv = _PRIV_PROTOCOLS[v3_priv.upper()]
        self.ssh_user = ssh_user
        self.ssh_password = ssh_password
        self.snmp = snmp
        self.ssh = ssh
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self._own_workdir = False
        self._root_if = f"{name}-lab"
        self._sites = self._plan(sites)
        self._order = sorted(self._sites, key=lambda c: self._sites[c].index)
        self._snmpd: dict[str, subprocess.Popen[bytes]] = {}
        self._sshd: dict[str, subprocess.Popen[bytes]] = {}
        self._started = False
        self._sshd_path = ""

    # ------------------------------------------------------------------ plan

    def _plan(self, sites: list[LabSite]) -> dict[str, _Site]:
        by_code: dict[str, LabSite] = {}
        for site in sites:
            _validate(r"\d{6}", site.code, "site code")
            if site.code in by_code:
                raise ValueError(f"duplicate site code {site.code}")
            by_code[site.code] = site
        roots = [s.code for s in sites if s.parent is None]
        if len(roots) != 1:
            raise ValueError(f"exactly one site must have no parent (found {roots or 'none'})")
        children: dict[str, list[str]] = {code: [] for code in by_code}
        for site in sites:
            if site.parent is not None:
                if site.parent not in by_code:
                    raise ValueError(f"site {site.code}: unknown parent {site.parent}")
                children[site.parent].append(site.code)
        order: list[str] = []
        stack = [roots[0]]
        while stack:
            code = stack.pop()
            order.append(code)
            stack.extend(sorted(children[code], reverse=True))
        if len(order) != len(by_code):
            raise ValueError(f"sites not connected to {roots[0]}: {sorted(set(by_code) - set(order))}")
        links, hosts = self.network.subnets(prefixlen_diff=1)
        if len(order) > links.num_addresses // 4 or len(order) > hosts.num_addresses // 256 * 254:
            raise ValueError(f"{len(order)} sites do not fit in {self.network}")

        def site_ip(i: int) -> ipaddress.IPv4Address:
            return hosts.network_address + (i // 254) * 256 + (i % 254) + 1

        def link_base(i: int) -> ipaddress.IPv4Address:
            return links.network_address + 4 * i

        plan: dict[str, _Site] = {}
        for index, code in enumerate(order):
            parent = by_code[code].parent
            plan[code] = _Site(
                code=code, parent=parent, index=index, ns=f"{self.name}-{code}", address=str(site_ip(index)),
                uplink=f"up-{parent}" if parent else "up-host", downlink=f"dn-{code}" if parent else self._root_if,
                parent_ip=str(link_base(index) + 1), child_ip=str(link_base(index) + 2),
                children=sorted(children[code]))
        for code in reversed(order):  # children before parents: compute the last index of each subtree
            node = plan[code]
            node.last_index = max([node.index] + [plan[c].last_index for c in node.children])
            node.prefixes = [
                *ipaddress.summarize_address_range(site_ip(node.index), site_ip(node.last_index)),
                *ipaddress.summarize_address_range(link_base(node.index), link_base(node.last_index) + 3),
            ]
        return plan

    def _site(self, code: str) -> _Site:
        try:
            return self._sites[code]
        except KeyError:
            raise ValueError(f"unknown site code {code!r}") from None

    def _need_started(self) -> None:
        if not self._started or self.workdir is None:
            raise RuntimeError("the lab is not started")

    # ------------------------------------------------------------------ queries

    @property
    def codes(self) -> list[str]:
        """Site codes in depth-first order (the ministry first)."""
        return list(self._order)

    @property
    def root_address(self) -> str:
        """The host's address on its link to the ministry: the source address of the poller's packets."""
        return self._sites[self._order[0]].parent_ip

    @property
    def root_ifname(self) -> str:
        """The host-side interface towards the ministry (``<name>-lab``)."""
        return self._root_if

    def address(self, code: str) -> str:
        """Return the site device's management IPv4 address (snmpd and sshd listen there).

        Raises ValueError for an unknown code.
        """
        return self._site(code).address

    def namespace(self, code: str) -> str:
        """Return the name of the site's network namespace (``<name>-<code>``)."""
        return self._site(code).ns

    def uplink_ifname(self, code: str) -> str:
        """Return the interface inside the site's namespace that carries its link to the parent.

        That is what the site's own SNMP agent shows in ifDescr/ifName: ``up-<parent code>``, or ``up-host``
        for the ministry. Raises ValueError for an unknown code.
        """
        return self._site(code).uplink

    def downlink_ifname(self, code: str) -> str:
        """Return the interface in the parent's namespace towards this site (``dn-<code>``; the host's for the
        ministry). Raises ValueError for an unknown code."""
        return self._site(code).downlink

    def sys_name(self, code: str) -> str:
        """Return the sysName the site's agent answers (and the hostname sshd sessions see): ``site-<code>``."""
        return f"site-{self._site(code).code}"

    def subtree(self, code: str) -> list[str]:
        """Return the codes of the site and all its descendants (depth-first order)."""
        site = self._site(code)
        return self._order[site.index:site.last_index + 1]

    def snmp_cli_args(self, v3: bool = False) -> list[str]:
        """Return net-snmp CLI options (``snmpget`` etc.) for the lab's v2c community or its v3 authPriv user."""
        if not v3:
            return ["-v2c", "-c", self.community]
        return ["-v3", "-l", "authPriv", "-u", self.v3_user, "-a", self.v3_auth, "-A", self.v3_auth_key,
                "-x", self.v3_priv, "-X", self.v3_priv_key]

    def client_env(self) -> dict[str, str]:
        """Return an environment for net-snmp CLI tools that keeps their state in the lab's workdir.

        (Run as root, snmpget otherwise creates /var/lib/snmp/cert_indexes.) Raises RuntimeError if not started.
        """
        self._need_started()
        assert self.workdir is not None
        client = str(self.workdir / "snmp-client")
        return {**os.environ, "SNMPCONFPATH": client, "SNMP_PERSISTENT_DIR": client, "MIBS": ""}

    def reachable(self, code: str, timeout: float = 1.0) -> bool:
        """Return whether the site's address answers from the host (a TCP connect to a closed port gets a RST)."""
        address = self._site(code).address
        return address in _probe_tcp([address], timeout)

    def host_key_fingerprint(self, code: str) -> str:
        """Return the SHA256 fingerprint (``SHA256:…``, as ``ssh-keygen -l`` prints it) of the site's sshd host key.

        Raises RuntimeError if the lab has no sshd or is not started.
        """
        self._need_started()
        if not self.ssh:
            raise RuntimeError("this lab runs without sshd")
        blob = base64.b64decode(self._host_key(code).with_suffix(".pub").read_text().split()[1])
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> NetLab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Build namespaces, veths, addresses and routes, start the agents and wait until every one answers.

        Raises RuntimeError (naming the failed command and its stderr, or the silent sites and their logs)
        when anything fails; the partly built lab is then removed again.
        """
        if self._started:
            raise RuntimeError("the lab is already started")
        if os.geteuid() != 0:
            raise RuntimeError("NetLab needs root (network namespaces, veths, sshd)")
        t0 = time.monotonic()
        try:  # before anything is created: a failure here must not tear down someone else's lab
            self._check_free()
        except RuntimeError:
            if not self._auto_network:
                raise
            # the block picked at construction was taken since: pick again (addresses change)
            self.network = ipaddress.IPv4Network(self.free_network(_network_prefixlen(len(self._sites))))
            self._sites = self._plan(self._lab_sites)
            self._check_free()
        self._started = True
        atexit.register(self.stop)
        try:
            self._prepare_workdir()
            key_jobs = self._prepare_ssh() if self.ssh else []
            self._build_network(key_jobs)
            log.debug("netlab %s: network built in %.2fs", self.name, time.monotonic() - t0)
            self._wait_reachable(self._order, timeout=10)
            log.debug("netlab %s: routing checked at %.2fs", self.name, time.monotonic() - t0)
            for code in self._order:
                if self.snmp:
                    self._start_snmpd(code)
                if self.ssh:
                    self._start_sshd(code)
            log.debug("netlab %s: agents spawned at %.2fs", self.name, time.monotonic() - t0)
            if self.ssh:
                self._wait_sshd(self._order)
                log.debug("netlab %s: sshd listening at %.2fs", self.name, time.monotonic() - t0)
            if self.snmp:
                self._wait_snmpd(self._order)
        except BaseException:
            self.stop()
            raise
        log.info("netlab %s: %d sites up in %.2fs", self.name, len(self._order), time.monotonic() - t0)

    def _check_free(self) -> None:
        pattern = re.compile(rf"{re.escape(self.name)}-\d{{6}}")
        stale = [ns for ns in _list_netns() if pattern.fullmatch(ns)]
        if stale or Path(f"/sys/class/net/{self._root_if}").exists():
            raise RuntimeError(f"lab {self.name!r} already exists ({', '.join(stale[:5]) or self._root_if}); "
                               f"another run is active or crashed: NetLab.cleanup_stale({self.name!r}) removes it")
        # Other things on this host may use parts of 198.18.0.0/15 too (other labs: their route covers their
        # whole network but they only use its registered prefixes). Refuse only a real overlap.
        used = self._sites[self._order[0]].prefixes
        for net, owner in _occupied():
            if net == self.network or any(net.overlaps(prefix) for prefix in used):
                raise RuntimeError(f"{self.network} is already in use on this host ({net}: {owner}); "
                                   f"another lab is running? Give this one network='auto' or a disjoint block")
        register_lab(self.name, str(self.network), [str(p) for p in used])

    def _prepare_workdir(self) -> None:
        self.workdir, self._own_workdir = lab_workdir(f"netlab-{self.name}", self._workdir_arg)
        client = self.workdir / "snmp-client"
        client.mkdir(exist_ok=True)
        (client / "snmp.conf").write_text("mibs :\n")
        for code in self._order:
            site_dir = self._site_dir(code)
            (site_dir / "persist").mkdir(parents=True, exist_ok=True)
            if self.snmp:
                (site_dir / "snmpd.conf").write_text(self._snmpd_config(code))

    def _site_dir(self, code: str) -> Path:
        assert self.workdir is not None
        return self.workdir / code

    def _host_key(self, code: str) -> Path:
        return self._site_dir(code) / "ssh_host_ed25519_key"

    def _snmpd_config(self, code: str) -> str:
        return (f"# generated by ecocloud_ops.lab.netlab for lab {self.name}, site {code}\n"
                f"sysName {self.sys_name(code)}\n"
                f"sysLocation {self.name} lab, site {code}\n"
                "sysContact ecocloud-lab\n"
                "dontLogTCPWrappersConnects yes\n"
                f"rocommunity {self.community}\n"
                f'createUser {self.v3_user} {self.v3_auth} "{self.v3_auth_key}" {self.v3_priv} "{self.v3_priv_key}"\n'
                f"rouser {self.v3_user} priv\n")

    def _sshd_config(self, code: str) -> str:
        site_dir = self._site_dir(code)
        return (f"# generated by ecocloud_ops.lab.netlab for lab {self.name}, site {code}\n"
                f"ListenAddress {self.address(code)}:{SSH_PORT}\n"
                f'HostKey "{self._host_key(code)}"\n'
                f'PidFile "{site_dir / "sshd.pid"}"\n'
                "UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin no\n"
                f"AllowUsers {self.ssh_user}\n"
                "UseDNS no\nPrintMotd no\nPrintLastLog no\n"
                "MaxStartups 100:30:200\nMaxSessions 20\nLoginGraceTime 30\n"
                "Subsystem sftp internal-sftp\n")

    def _prepare_ssh(self) -> list[tuple[list[str], str | None]]:
        """Make sure the login user exists with our password; write sshd configs; return the key-making jobs."""
        sshd = shutil.which("sshd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if sshd is None:
            raise RuntimeError("sshd not found (Debian package openssh-server)")
        self._sshd_path = os.path.abspath(sshd)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        try:
            pwd.getpwnam(self.ssh_user)
        except KeyError:
            result = _run(["useradd", "-M", "-s", "/bin/bash", self.ssh_user], check=False)
            if result.returncode not in (0, 9):  # 9: created meanwhile by someone else
                raise RuntimeError(f"useradd {self.ssh_user} failed (exit {result.returncode}): "
                                   f"{result.stderr.strip()}") from None
        _run(["chpasswd"], input_text=f"{self.ssh_user}:{self.ssh_password}\n")
        jobs: list[tuple[list[str], str | None]] = []
        for code in self._order:
            (self._site_dir(code) / "sshd_config").write_text(self._sshd_config(code))
            jobs.append((self._keygen_cmd(code), None))
        return jobs

    def _keygen_cmd(self, code: str) -> list[str]:
        key = self._host_key(code)
        for path in (key, key.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.sys_name(code), "-f", str(key)]

    def _build_network(self, extra_jobs: list[tuple[list[str], str | None]]) -> None:
        ministry = self._sites[self._order[0]]
        lines = [f"netns add {self._sites[c].ns}" for c in self._order]
        lines.append(f"link add {self._root_if} type veth peer name {ministry.uplink} netns {ministry.ns}")
        for code in self._order[1:]:
            site = self._sites[code]
            assert site.parent is not None
            parent = self._sites[site.parent]
            lines.append(f"link add {site.downlink} netns {parent.ns} type veth peer name {site.uplink} "
                         f"netns {site.ns}")
        _run(["ip", "-batch", "-"], input_text="\n".join(lines) + "\n")
        try:  # the host side: IPv4 only (no fe80:: address on our veth)
            Path(f"/proc/sys/net/ipv6/conf/{self._root_if}/disable_ipv6").write_text("1\n")
        except OSError:
            pass
        jobs = [(["ip", "netns", "exec", self._sites[c].ns, "sh", "-c", _NS_SETUP_SCRIPT], self._ns_batch(c))
                for c in self._order]
        _run_parallel(jobs + extra_jobs)
        _run(["ip", "-batch", "-"], input_text=(
            f"addr add {ministry.parent_ip}/30 dev {self._root_if}\n"
            f"link set {self._root_if} up\n"
            f"route add {self.network} via {ministry.child_ip} dev {self._root_if}\n"))

    def _ns_batch(self, code: str) -> str:
        site = self._sites[code]
        lines = ["link set lo up", f"addr add {site.address}/32 dev lo",
                 f"addr add {site.child_ip}/30 dev {site.uplink}", f"link set {site.uplink} up"]
        for child_code in site.children:
            child = self._sites[child_code]
            lines += [f"addr add {child.parent_ip}/30 dev {child.downlink}", f"link set {child.downlink} up"]
        if site.parent is not None:
            lines.append(f"route replace default via {site.parent_ip} dev {site.uplink} onlink")
        for child_code in site.children:
            child = self._sites[child_code]
            lines += [f"route replace {prefix} via {child.child_ip} dev {child.downlink} onlink"
                      for prefix in child.prefixes]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ agents

    def _spawn(self, cmd: list[str], logfile: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with logfile.open("ab") as out:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)

    def _start_snmpd(self, code: str) -> None:
        site_dir = self._site_dir(code)
        env = {**os.environ, "SNMPCONFPATH": f"{site_dir}:{site_dir / 'persist'}",
               "SNMP_PERSISTENT_DIR": str(site_dir / "persist"), "MIBS": ""}
        self._snmpd[code] = self._spawn(
            ["ip", "netns", "exec", self._sites[code].ns, "snmpd", "-f", "-Lo", "-I", "-smux", "-p",
             str(site_dir / "snmpd.pid"),
             f"udp:{self.address(code)}:{SNMP_PORT}"], site_dir / "snmpd.log", env)

    def _start_sshd(self, code: str) -> None:
        # Own UTS namespace (so `uname -n` says site-<code>) and own PID namespace: sshd is its init and reaps
        # every session process; when it exits the kernel kills and reaps the rest; unshare reaps sshd.
        site_dir = self._site_dir(code)
        script = (f"hostname {shlex.quote(self.sys_name(code))} && "
                  f"exec {shlex.quote(self._sshd_path)} -D -e -f {shlex.quote(str(site_dir / 'sshd_config'))}")
        self._sshd[code] = self._spawn(
            ["ip", "netns", "exec", self._sites[code].ns, "unshare", "--uts", "--pid", "--fork", "--kill-child",
             "sh", "-c", script], site_dir / "sshd.log")

    def _agent_failure(self, what: str, codes: list[str], logname: str) -> RuntimeError:
        procs = self._snmpd if logname.startswith("snmpd") else self._sshd

        def status(code: str) -> str:
            proc = procs.get(code)
            return "" if proc is None or proc.returncode is None else f", exit status {proc.returncode}"

        details = "; ".join(f"{code} ({self.address(code)}{status(code)}): "
                            f"{_log_tail(self._site_dir(code) / logname, 400)}" for code in codes[:3])
        more = f" and {len(codes) - 3} more" if len(codes) > 3 else ""
        return RuntimeError(f"{what}: {details}{more}")

    def _wait_reachable(self, codes: list[str], timeout: float) -> None:
        pending = {self.address(c): c for c in codes}
        deadline = time.monotonic() + timeout
        while pending:
            for addr in _probe_tcp(list(pending), min(1.0, max(0.05, deadline - time.monotonic()))):
                pending.pop(addr)
            if pending and time.monotonic() >= deadline:
                silent = sorted(pending.values())
                raise RuntimeError(f"sites unreachable from the host after {timeout:.0f}s: {', '.join(silent[:10])}"
                                   f"{' …' if len(silent) > 10 else ''} (routing in the lab is broken)")
            if pending:
                time.sleep(0.05)

    def _wait_snmpd(self, codes: list[str], timeout: float | None = None) -> None:
        timeout = timeout if timeout is not None else 10 + 0.05 * len(codes)
        pending = {self.address(c): c for c in codes}
        packets = {addr: _snmp_get_sysname(self.community, i + 1) for i, addr in enumerate(pending)}
        expected = {addr: self.sys_name(code).encode() for addr, code in pending.items()}
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            while pending:
                exited = [c for c in pending.values() if self._snmpd[c].poll() is not None]
                if exited:
                    raise self._agent_failure("snmpd exited", exited, "snmpd.log")
                if time.monotonic() >= deadline:
                    raise self._agent_failure(f"snmpd not answering after {timeout:.0f}s", sorted(pending.values()),
                                              "snmpd.log")
                for addr in pending:
                    try:
                        sock.sendto(packets[addr], (addr, SNMP_PORT))
                    except OSError:
                        pass
                round_end = time.monotonic() + 0.2
                while pending and (remaining := round_end - time.monotonic()) > 0:
                    with selectors.DefaultSelector() as sel:
                        sel.register(sock, selectors.EVENT_READ)
                        if not sel.select(remaining):
                            break
                    while True:
                        try:
                            data, (addr, _port) = sock.recvfrom(65535)
                        except BlockingIOError:
                            break
                        if addr in pending and expected[addr] in data:
                            pending.pop(addr)

    def _wait_sshd(self, codes: list[str], timeout: float | None = None) -> None:
        """Wait until each sshd listens (read from /proc/<pid>/net/tcp of its namespace: no connection made)."""
        timeout = timeout if timeout is not None else 10 + 0.02 * len(codes)
        pending = set(codes)
        deadline = time.monotonic() + timeout
        while pending:
            for code in sorted(pending):
                proc = self._sshd[code]
                if proc.poll() is not None:
                    raise self._agent_failure("sshd exited", [code], "sshd.log")
                local = f"{int.from_bytes(socket.inet_aton(self.address(code)), sys.byteorder):08X}:{SSH_PORT:04X}"
                try:
                    table = Path(f"/proc/{proc.pid}/net/tcp").read_text()
                except OSError:
                    continue
                if any(cols[1] == local and cols[3] == "0A" for cols in (ln.split() for ln in table.splitlines()[1:])):
                    pending.discard(code)
            if pending:
                if time.monotonic() >= deadline:
                    raise self._agent_failure(f"sshd not listening after {timeout:.0f}s", sorted(pending), "sshd.log")
                time.sleep(0.02)

    def stop_agent(self, code: str) -> None:
        """Stop the site's snmpd (SIGTERM, then SIGKILL; reaped). The site's address keeps answering ping.

        Raises RuntimeError if the lab is not started or runs without SNMP; ValueError for an unknown code.
        """
        self._need_started()
        self._site(code)
        if not self.snmp:
            raise RuntimeError("this lab runs without snmpd")
        proc = self._snmpd.pop(code, None)
        if proc is not None:
            self._terminate([proc])

    def start_agent(self, code: str) -> None:
        """Start the site's snmpd again (if stopped) and wait until it answers; raises RuntimeError if it does not."""
        self._need_started()
        self._site(code)
        if not self.snmp:
            raise RuntimeError("this lab runs without snmpd")
        if code in self._snmpd and self._snmpd[code].poll() is None:
            return
        self._snmpd.pop(code, None)
        self._start_snmpd(code)
        self._wait_snmpd([code], timeout=10)

    def stop_ssh(self, code: str) -> None:
        """Stop the site's sshd and every session it serves. Raises RuntimeError if the lab has no sshd."""
        self._need_started()
        self._site(code)
        if not self.ssh:
            raise RuntimeError("this lab runs without sshd")
        proc = self._sshd.pop(code, None)
        if proc is not None:
            self._terminate([proc], chains={proc.pid})

    def start_ssh(self, code: str) -> None:
        """Start the site's sshd again (if stopped) and wait until it listens; raises RuntimeError otherwise."""
        self._need_started()
        self._site(code)
        if not self.ssh:
            raise RuntimeError("this lab runs without sshd")
        if code in self._sshd and self._sshd[code].poll() is None:
            return
        self._sshd.pop(code, None)
        self._start_sshd(code)
        self._wait_sshd([code], timeout=10)

    def rotate_host_key(self, code: str) -> None:
        """Give the site a new sshd host key and restart its sshd (for "host key changed" tests).

        Returns once the new sshd listens; raises RuntimeError on failure.
        """
        self.stop_ssh(code)
        _run(self._keygen_cmd(code))
        self.start_ssh(code)

    # ------------------------------------------------------------------ links

    def cut(self, code: str) -> None:
        """Take the site's link to its parent down (inside the site's namespace).

        The site and its whole subtree become unreachable from the host. Raises RuntimeError if the lab is
        not started or the command fails; ValueError for an unknown code.
        """
        self._need_started()
        site = self._site(code)
        _run(["ip", "-n", site.ns, "link", "set", site.uplink, "down"])

    def restore(self, code: str) -> None:
        """Bring the site's link to its parent back up and re-add the routes the kernel dropped.

        Returns when the site's address answers again from the host; raises RuntimeError if it does not within
        5 s (e.g. because an ancestor's link is still cut) or a command fails.
        """
        self._need_started()
        site = self._site(code)
        lines = [f"link set {site.uplink} up"]
        if site.parent is not None:
            lines.append(f"route replace default via {site.parent_ip} dev {site.uplink} onlink")
        _run(["ip", "-n", site.ns, "-batch", "-"], input_text="\n".join(lines) + "\n")
        if site.parent is None:
            _run(["ip", "route", "replace", str(self.network), "via", site.child_ip, "dev", self._root_if])
        else:
            parent_lines = [f"route replace {prefix} via {site.child_ip} dev {site.downlink} onlink"
                            for prefix in site.prefixes]
            _run(["ip", "-n", self._sites[site.parent].ns, "-batch", "-"], input_text="\n".join(parent_lines) + "\n")
        self._wait_reachable([code], timeout=5)

    # ------------------------------------------------------------------ teardown

    def _terminate(self, procs: list[subprocess.Popen[bytes]], chains: set[int] | None = None,
                   grace: float = 3.0) -> None:
        """SIGTERM (for an unshare chain: its child), wait, then SIGKILL, and reap every process."""
        chains = chains or set()

        def signal_proc(proc: subprocess.Popen[bytes], sig: int) -> None:
            if proc.poll() is not None:
                return
            inner = _children(proc.pid) if proc.pid in chains else []
            targets = inner or [proc.pid]  # unshare ignores SIGTERM: signal the sshd it forked
            for pid in targets:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

        for proc in procs:
            signal_proc(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:
            if proc.poll() is None:
                log.warning("netlab %s: pid %s ignored SIGTERM, killing it", self.name, proc.pid)
                signal_proc(proc, signal.SIGKILL)
                try:
                    proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(2.0)
                    except subprocess.TimeoutExpired:
                        log.error("netlab %s: pid %s does not die", self.name, proc.pid)

    def stop(self) -> None:
        """Kill and reap every process the lab started, delete its namespaces and veths (and so the host route).

        Idempotent; safe after a failed or partial :meth:`start`; never raises (problems are logged).
        """
        if not self._started:
            return
        t0 = time.monotonic()
        try:
            procs = list(self._snmpd.values()) + list(self._sshd.values())
            self._terminate(procs, chains={p.pid for p in self._sshd.values()})
        except Exception:
            log.exception("netlab %s: stopping agents failed", self.name)
        self._snmpd.clear()
        self._sshd.clear()
        try:
            _remove_namespaces([self._sites[c].ns for c in self._order], self._root_if)
        except Exception:
            log.exception("netlab %s: removing namespaces failed", self.name)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        _unregister(self.name, os.getpid())
        self._started = False
        atexit.unregister(self.stop)
        log.info("netlab %s: stopped in %.2fs", self.name, time.monotonic() - t0)

    @staticmethod
    def free_network(prefixlen: int = 22) -> str:
        """Return a /``prefixlen`` block of 198.18.0.0/15 that no route or address of this host overlaps.

        Searches from the top of the range down (a lab with the default network starts at the bottom of each
        half). Raises RuntimeError when every block is taken (e.g. a lab uses the whole /15).
        The answer can race with another lab starting at the same moment: its ``start()`` then fails.
        """
        if not LAB_RANGE.prefixlen <= prefixlen <= 23:
            raise ValueError(f"prefixlen must be between {LAB_RANGE.prefixlen} and 23")
        taken = [net for net, _owner in _occupied()]
        for candidate in reversed(list(LAB_RANGE.subnets(new_prefix=prefixlen))):
            if not any(candidate.overlaps(net) for net in taken):
                return str(candidate)
        raise RuntimeError(f"no free /{prefixlen} left in {LAB_RANGE} on this host")

    @staticmethod
    def cleanup_stale(name: str = "eco") -> int:
        """Remove what a crashed earlier run of a lab called ``name`` left: processes in its namespaces,
        the namespaces, the host veth (and with it the host route) and temporary workdirs of dead owners.

        Returns how many namespaces were removed. Do not call it while a lab of that name is running.
        Processes of a crashed run were orphaned to init, which does not reap here: they end as zombies.
        """
        _validate(r"[a-z][a-z0-9]{0,10}", name, "lab name")
        pattern = re.compile(rf"{re.escape(name)}-\d{{6}}")
        stale = [ns for ns in _list_netns() if pattern.fullmatch(ns)]
        _remove_namespaces(stale, f"{name}-lab")
        _unregister(name, None)
        for workdir in Path(tempfile.gettempdir()).glob(f"netlab-{name}-*"):
            try:
                owner = int((workdir / "owner.pid").read_text())
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner) and owner != os.getpid():
                continue
            shutil.rmtree(workdir, ignore_errors=True)
        return sum(1 for ns in stale if not (_NETNS_DIR / ns).exists())


def _network_prefixlen(sites: int) -> int:
    """The smallest network (/23 at most) whose halves hold ``sites`` /30 links and site addresses."""
    half = max(4 * sites, 256 * -(-sites // 254), 256)
    return 32 - (2 * half - 1).bit_length()


def _running_labs() -> dict[str, list[ipaddress.IPv4Network]]:
    """Network → used prefixes of the labs registered in /run by live processes."""
    labs: dict[str, list[ipaddress.IPv4Network]] = {}
    for entry in sorted(_REGISTRY.glob("*.json")) if _REGISTRY.is_dir() else []:
        try:
            data = json.loads(entry.read_text())
            if not _alive(int(data["pid"])):
                continue
            labs[str(ipaddress.IPv4Network(data["network"]))] = [ipaddress.IPv4Network(p) for p in data["used"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return labs


def register_lab(name: str, network: str, used: list[str], **extra: str) -> None:
    """Record a running lab's block in the registry (see the module docstring); a failure only warns."""
    try:
        _REGISTRY.mkdir(mode=0o755, exist_ok=True)
        (_REGISTRY / f"{name}.json").write_text(json.dumps(
            {"pid": os.getpid(), "network": network, "used": used} | extra))
    except OSError as exc:
        log.warning("lab %s: cannot register in %s: %s", name, _REGISTRY, exc)


def lab_workdir(prefix: str, given: Path | None) -> tuple[Path, bool]:
    """The lab's working directory (a new temporary one unless given) with the owner's pid in it; True when
    the lab created it (and removes it at the end)."""
    if given is None:
        workdir, own = Path(tempfile.mkdtemp(prefix=f"{prefix}-")), True
    else:
        workdir, own = given.resolve(), False
        workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "owner.pid").write_text(f"{os.getpid()}\n")
    return workdir, own


def _unregister(name: str, pid: int | None) -> None:
    """Remove a lab's registry entry (only if it belongs to ``pid``, when given)."""
    entry = _REGISTRY / f"{name}.json"
    try:
        if pid is not None and json.loads(entry.read_text()).get("pid") != pid:
            return
        entry.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _occupied() -> list[tuple[ipaddress.IPv4Network, str]]:
    """What this host already uses of the IPv4 space: route destinations (all tables, default excluded) and
    interface addresses, each with a description; a running lab's route counts only for its used prefixes."""
    labs = _running_labs()
    nets: list[tuple[ipaddress.IPv4Network, str]] = []
    for route in json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst")
        if not dst or dst == "default":
            continue
        try:
            net = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if str(net) in labs:  # a running lab's route covers its block, but it only uses these prefixes
            nets += [(prefix, f"used by the lab on {net}, dev {route.get('dev')}") for prefix in labs[str(net)]]
        elif not any(net.subnet_of(prefix) for lab in labs.values() for prefix in lab):
            nets.append((net, f"route dev {route.get('dev')}"))
    for iface in json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        nets += [(ipaddress.IPv4Network(info["local"]), f"address on {iface.get('ifname')}")
                 for info in iface.get("addr_info", []) if "local" in info]
    return nets


def _remove_namespaces(namespaces: list[str], root_if: str) -> None:
    """Kill whatever still runs in the namespaces (children first), then delete them and the host veth."""
    keys = {key for ns in namespaces if (key := _netns_key(str(_NETNS_DIR / ns))) is not None}
    leftovers = _pids_in_netns(keys)
    if leftovers:
        log.warning("netlab: killing %d leftover process(es) in the lab namespaces: %s", len(leftovers),
                    sorted(leftovers))
        _kill_leaves_first(leftovers)
    lines = [f"link del {root_if}"] if Path(f"/sys/class/net/{root_if}").exists() else []
    lines += [f"netns del {ns}" for ns in namespaces if (_NETNS_DIR / ns).exists()]
    if lines:
        result = _run(["ip", "-force", "-batch", "-"], input_text="\n".join(lines) + "\n", check=False)
        if result.returncode != 0:
            log.warning("netlab: ip -batch (delete) reported: %s", result.stderr.strip())
