"""Stand-in guests for the OpenStack lab's VMs: the fake virt driver boots nothing, so each VM's fixed IPv4
address is given to a network namespace of its own running OpenSSH's ``sshd``. The post-boot playbook then
really runs, over SSH, against "the VM".

``GuestHosts.watch(conn)`` polls the cloud (an admin openstacksdk connection) and gives every ACTIVE server of the
watched projects a guest; a deleted server's guest goes away. Traffic stays on this machine: the address lives
in a namespace this class creates, reached over a veth pair whose host end carries a link-local address.

Each guest's sshd is the init of its own PID namespace (like the DR lab's hosts) and is killed by pid at
:meth:`GuestHosts.stop`. One key pair per lab: :attr:`GuestHosts.private_key` is the key the platform's
``cloud_ssh_key_path`` points at.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .netlab import _children, _kill_leaves_first, _list_netns

log = logging.getLogger(__name__)


@dataclass
class Guest:
    server_id: str
    name: str
    address: str
    index: int
    proc: subprocess.Popen[bytes]


class GuestHosts:
    def __init__(self, prefix: str = "ecogst", workdir: Path | None = None) -> None:
        if not prefix.isalnum() or len(prefix) > 7:
            raise ValueError("prefix: up to 7 letters or digits (interface names are short)")
        self.prefix = prefix
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.guests: dict[str, Guest] = {}
        self._next = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        ssh = self.workdir / "ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        self.private_key = ssh / "id_ed25519"
        if not self.private_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ecocloud-guest-lab", "-f",
                            str(self.private_key)], check=True)
        self.host_key = ssh / "host_ed25519_key"
        if not self.host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True)
        (ssh / "authorized_keys").write_text(Path(f"{self.private_key}.pub").read_text())
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    # ------------------------------------------------------------------ guests

    def _names(self, index: int) -> tuple[str, str, str, str]:
        ns = f"{self.prefix}g{index}"
        return ns, f"{self.prefix}h{index}", f"{self.prefix}v{index}", f"169.254.{200 + index // 250}.{index % 250 + 1}"

    def add(self, server_id: str, name: str, address: str) -> Guest:
        """A namespace holding ``address`` with sshd listening on it (port 22)."""
        ipaddress.IPv4Address(address)
        with self._lock:
            if server_id in self.guests:
                return self.guests[server_id]
            index = self._next
            self._next += 1
        ns, host_if, ns_if, link = self._names(index)
        host = [f"netns add {ns}", f"link add {host_if} type veth peer name {ns_if}",
                f"link set {ns_if} netns {ns}", f"addr add {link}/32 dev {host_if}", f"link set {host_if} up"]
        inside = ["link set lo up", f"addr add {address}/32 dev {ns_if}", f"link set {ns_if} up",
                  f"route add {link}/32 dev {ns_if}", f"route add default via {link} dev {ns_if} onlink"]
        for argv, lines in ((["ip", "-batch", "-"], host), (["ip", "-n", ns, "-batch", "-"], inside),
                            (["ip", "-batch", "-"], [f"route replace {address}/32 dev {host_if} src {link}"])):
            done = subprocess.run(argv, input=("\n".join(lines) + "\n").encode(), capture_output=True)
            if done.returncode != 0:
                raise RuntimeError(f"guest {name} ({address}): {' '.join(argv)} failed: "
                                   f"{done.stderr.decode(errors='replace').strip()}")
        conf = self.workdir / "ssh" / f"{ns}_sshd_config"
        ssh = self.workdir / "ssh"
        conf.write_text(f"# ecocloud_ops.lab.guests: the stand-in of VM {name} ({server_id})\n"
                        f"ListenAddress {address}:22\nHostKey \"{self.host_key}\"\n"
                        f"PidFile \"{ssh / (ns + '.pid')}\"\nAuthorizedKeysFile \"{ssh / 'authorized_keys'}\"\n"
                        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\nPrintMotd no\n"
                        "MaxStartups 50:30:100\nLoginGraceTime 30\nSubsystem sftp internal-sftp\n")
        script = f"hostname {shlex.quote(name[:60])} && exec {self._sshd} -D -e -f {shlex.quote(str(conf))}"
        with (ssh / f"{ns}_sshd.log").open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "unshare", "--uts", "--pid", "--mount-proc", "--fork", "--kill-child",
                 "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        guest = Guest(server_id, name, address, index, proc)
        with self._lock:
            self.guests[server_id] = guest
        return guest

    def remove(self, server_id: str) -> None:
        with self._lock:
            guest = self.guests.pop(server_id, None)
        if guest is not None:
            self._kill(guest)

    def _kill(self, guest: Guest) -> None:
        ns, host_if, _ns_if, _link = self._names(guest.index)
        tree = {guest.proc.pid: 0}
        for child in _children(guest.proc.pid):
            tree[child] = guest.proc.pid
        _kill_leaves_first(tree)
        with contextlib.suppress(Exception):
            guest.proc.wait(timeout=5)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    # ------------------------------------------------------------------ watching the cloud

    def sync(self, conn: Any, project_ids: set[str] | None = None) -> int:
        """Give each ACTIVE server (of ``project_ids``, or all) with a fixed IPv4 a guest; drop guests of servers
        that are gone. Returns how many guests exist."""
        seen = set()
        for server in conn.compute.servers(details=True, all_projects=True):
            if project_ids is not None and server.project_id not in project_ids:
                continue
            if server.status != "ACTIVE":
                continue
            address = next((a["addr"] for addrs in (server.addresses or {}).values() for a in addrs
                            if a.get("version") == 4 or ":" not in a["addr"]), None)
            if address:
                seen.add(server.id)
                if server.id not in self.guests:
                    self.add(server.id, server.name, address)
        for sid in list(self.guests):
            if sid not in seen:
                self.remove(sid)
        return len(self.guests)

    def watch(self, connect: Any, project_ids: set[str] | None = None, interval: float = 1.0) -> None:
        """Keep syncing in a thread (``connect``: a function returning an admin connection)."""
        def loop() -> None:
            conn = connect()
            try:
                while not self._stop.wait(interval):
                    try:
                        self.sync(conn, project_ids)
                    except Exception:
                        log.exception("guest sync failed")
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

        self._thread = threading.Thread(target=loop, name="lab-guests", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sid in list(self.guests):
            self.remove(sid)
        for ns in _list_netns():
            if ns.startswith(f"{self.prefix}g"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    @staticmethod
    def cleanup_stale(prefix: str = "ecogst") -> int:
        """Namespaces and links left by a killed run (their sshd died with them or is killed here)."""
        removed = 0
        for ns in _list_netns():
            if ns.startswith(f"{prefix}g") and ns[len(prefix) + 1:].isdigit():
                out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
                for pid in out:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), 9)
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                subprocess.run(["ip", "link", "del", f"{prefix}h{ns[len(prefix) + 1:]}"], capture_output=True)
                removed += 1
        return removed

    def __enter__(self) -> GuestHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        time.sleep(0)
