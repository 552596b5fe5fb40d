"""A real net-snmp ``snmpd`` run as a foreground child process on loopback (contract tests, benchmark).

The agent gets its own config file, PID file, log file and persistent directory (``SNMP_PERSISTENT_DIR``)
inside a directory the caller owns, so nothing under ``/etc/snmp`` or ``/var/lib/snmp`` is read or written.
It listens only on the loopback endpoints it is given (``udp:127.x.y.z:PORT``), never on ``0.0.0.0``.
This machine's init does not reap orphans: the agent is never daemonized, and :meth:`SnmpdPeer.stop`
kills it by PID and reaps it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"

COMMUNITY = "ecolab-ro"
AGENT_SYS_NAME = "ecolab-agent"


@dataclass(frozen=True)
class V3User:
    """An SNMPv3 authPriv user; ``auth``/``priv`` are net-snmp ``createUser`` protocol spellings."""

    name: str
    auth: str  # "SHA" | "SHA-256"
    auth_key: str
    priv: str  # "AES" (AES-128) | "AES256"
    priv_key: str

    @property
    def create_user(self) -> str:
        return f'createUser {self.name} {self.auth} "{self.auth_key}" {self.priv} "{self.priv_key}"'


SHA_AES128 = V3User("eco-sha", "SHA", "auth-sha-pass-1", "AES", "priv-aes128-pass-1")
SHA256_AES256 = V3User("eco-sha256", "SHA-256", "auth-sha256-pass-2", "AES256", "priv-aes256-pass-2")


def snmpd_path() -> str | None:
    """Path of net-snmp's ``snmpd`` (Debian package ``snmpd``), or None when it is not installed."""
    found = shutil.which("snmpd")
    if found:
        return found
    return "/usr/sbin/snmpd" if os.access("/usr/sbin/snmpd", os.X_OK) else None


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free on ``host`` right now, *below* the kernel's ephemeral range.

    Tests kill agents and then keep sending to their ports. A port from the ephemeral range can be handed to one
    of the client's own sockets; connected to itself, that socket reads back its own request (gufo then reports
    "undecodable answer (invalid pdu)"), a failure that is the test's, not the platform's. It happened once in CI.
    """
    rng = random.Random()
    high = max(_ephemeral_low() - 1, 20001)
    for _ in range(200):
        port = rng.randint(20000, high)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free UDP port in 20000-{high} on {host}")


def _ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(body)) + body


def _ber_oid(oid: str) -> bytes:
    arcs = [int(a) for a in oid.strip(".").split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return _tlv(0x06, bytes(out))


def v2c_get_packet(community: str, oid: str, request_id: int = 1) -> bytes:
    """A BER-encoded SNMPv2c GetRequest for one OID (used to probe that an agent answers)."""
    varbind = _tlv(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _tlv(0x02, request_id.to_bytes(4, "big")) + b"\x02\x01\x00\x02\x01\x00" + _tlv(0x30, varbind))
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, community.encode()) + pdu)


def answers(host: str, port: int, community: str = COMMUNITY, timeout: float = 0.2) -> bool:
    """True when a v2c GET of sysUpTime.0 sent to ``host:port`` gets any reply within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(v2c_get_packet(community, SYS_UPTIME), (host, port))
            s.recvfrom(65535)
        except OSError:  # timeout, or ICMP port unreachable on Linux
            return False
    return True


class SnmpdPeer:
    """One ``snmpd -f`` child listening on the given loopback UDP endpoints.

    ``endpoints`` are ``(address, port)`` pairs; every address must be in 127.0.0.0/8.
    Every endpoint answers the same data (the host's own MIB-2: ``lo`` is ifIndex 1).
    """

    def __init__(
        self,
        workdir: Path,
        endpoints: list[tuple[str, int]],
        *,
        community: str = COMMUNITY,
        users: tuple[V3User, ...] = (SHA_AES128, SHA256_AES256),
        sys_name: str = AGENT_SYS_NAME,
    ) -> None:
        if not endpoints:
            raise ValueError("snmpd needs at least one endpoint")
        for addr, _port in endpoints:
            if not addr.startswith("127."):
                raise ValueError(f"lab snmpd must stay on loopback, not {addr}")
        self.workdir = workdir
        self.endpoints = endpoints
        self.community = community
        self.users = users
        self.sys_name = sys_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "snmpd.conf"
        self.pidfile = workdir / "snmpd.pid"
        self.log = workdir / "snmpd.log"
        self.persistent = workdir / "persist"

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        return self.endpoints[0][1]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def config_text(self) -> str:
        lines = [
            "# written by tests/contract/snmpd_peer.py",
            f"rocommunity {self.community} 127.0.0.0/8 .1.3.6",
            *(u.create_user for u in self.users),
            *(f"rouser {u.name} priv" for u in self.users),
            f"sysName {self.sys_name}",
            "sysLocation ecocloud contract lab (loopback)",
            "sysContact ops@ecocloud.invalid",
            "sysServices 72",
            "dontLogTCPWrappersConnects yes",  # no log line per request (matters at thousands of GETs/s)
            "",
        ]
        return "\n".join(lines)

    def start(self, timeout: float = 15.0) -> SnmpdPeer:
        exe = snmpd_path()
        if exe is None:
            raise RuntimeError("net-snmp snmpd is not installed (apt-get install -y snmpd)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistent.mkdir(exist_ok=True)
        self.conf.write_text(self.config_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNMP")}
        env["SNMP_PERSISTENT_DIR"] = str(self.persistent)
        env["MIBS"] = ""  # the agent needs no MIB files; do not search for them
        args = [exe, "-f", "-Lo", "-C", "-c", str(self.conf), "-p", str(self.pidfile)]
        args += [f"udp:{addr}:{port}" for addr, port in self.endpoints]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        probes = {self.endpoints[0], self.endpoints[-1]}
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"snmpd exited with {rc}:\n{self.log.read_text(errors='replace')[-3000:]}")
            if all(answers(a, p, self.community) for a, p in probes):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"snmpd did not answer within {timeout} s:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the agent (no clean shutdown) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        """Kill the agent by PID and reap it; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    def __enter__(self) -> SnmpdPeer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
