"""A small SSH server that plays a Huawei VRP or H3C Comware switch CLI, for the SSH adapter's lab tests.

No real device or public simulator of these CLIs is available, so this module answers the few commands the
platform sends (:data:`ecocloud_ops.adapters.ssh.PLATFORM_COMMANDS`) with recorded-looking output, well enough
for netmiko's real ``huawei`` and ``hp_comware`` drivers:

* password login for one user (optionally public-key login with one authorized key);
* an interactive shell on a PTY that echoes what it gets, with a banner before the first prompt;
* the user-view prompt ``<HB-130000>`` (VRP) or ``<H3C>`` (Comware); an empty line prints the prompt again;
* the paging switch netmiko's session preparation sends: ``screen-length 0 temporary`` (VRP) and
  ``screen-length disable`` (Comware); ``display version``, ``display interface brief``,
  ``display current-configuration`` (words may be abbreviated, ``dis cur``); ``quit`` (also ``exit``/``logout``)
  ends the session; anything else gets the platform's "Unrecognized command" error;
* ``ssh user@host 'display version'`` (an exec request) runs one command and exits.

The configurations contain the kinds of secrets :func:`ecocloud_ops.adapters.ssh.mask_secrets` must hide
(``snmp-agent community read cipher %^%#…%^%#``, ``local-user admin password irreversible-cipher $1c$…``,
Comware ``$c$3$…`` / ``$h$6$…``). They are made-up samples, not copies of a real device.

Run it as a child process (:class:`FakeCliServer` does that and reads its ready line)::

    python -m ecocloud_ops.lab.fake_cli --platform huawei --host 127.0.0.1 --port 0

It prints one JSON line ``{"host": …, "port": …, "host_key": "ssh-ed25519 AAAA…"}`` on stdout once it listens,
then serves until SIGTERM/SIGINT. The password comes from ``$ECOCLOUD_FAKE_CLI_PASSWORD`` (default
:data:`DEFAULT_PASSWORD`). ``--log FILE`` appends every command line received, one per line.
Needs ``asyncssh`` (a test/lab dependency, imported only by the child process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "PLATFORMS", "FakeCliServer", "main"]

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "Lab-Passw0rd-2026"
PASSWORD_ENV = "ECOCLOUD_FAKE_CLI_PASSWORD"

# ------------------------------------------------------------------------------------------------------------
# Recorded-looking outputs
# ------------------------------------------------------------------------------------------------------------

_HUAWEI_BANNER = """\

Info: The max number of VTY users is 10, and the number
      of current VTY users on line is 1.
      The current login time is 2026-05-09 09:12:31+08:00.
"""

_HUAWEI_VERSION = """\
Huawei Versatile Routing Platform Software
VRP (R) software, Version 5.170 (S5720 V200R011C10SPC600)
Copyright (C) 2000-2018 HUAWEI TECH Co., Ltd.
HUAWEI S5720-28X-SI-AC Routing Switch uptime is 125 days, 3 hours, 47 minutes

ES5D2S28S001 0(Master)  : uptime is 125 days, 3 hours, 46 minutes
DDR             Memory Size : 512   M bytes
FLASH Total     Memory Size : 512   M bytes
FLASH Available Memory Size : 361   M bytes
Pcb             Version     : VER B
BootROM         Version     : 020a.0001
BootLoad        Version     : 020a.0001
CPLD            Version     : 0107
Software        Version     : VRP (R) Software, Version 5.170 (V200R011C10SPC600)
FLASH           Version     : 0000.0000
"""

_HUAWEI_INTERFACES = """\
PHY: Physical
*down: administratively down
^down: standby
(l): loopback
(s): spoofing
(b): BFD down
(e): ETHOAM down
(dl): DLDP down
(d): Dampening Suppressed
InUti/OutUti: input utility/output utility
Interface                   PHY   Protocol InUti OutUti   inErrors  outErrors
GigabitEthernet0/0/1        up    up       0.02%  0.01%          0          0
GigabitEthernet0/0/2        up    up       0.01%  0.01%          0          0
GigabitEthernet0/0/3        down  down        0%     0%          0          0
GigabitEthernet0/0/4        *down down        0%     0%          0          0
MEth0/0/1                   down  down        0%     0%          0          0
NULL0                       up    up(s)       0%     0%          0          0
Vlanif1                     up    down        --     --          0          0
Vlanif100                   up    up          --     --          0          0
XGigabitEthernet0/0/1       up    up       1.21%  0.87%          0          0
XGigabitEthernet0/0/2       down  down        0%     0%          0          0
"""

_HUAWEI_CONFIG = """\
!Software Version V200R011C10SPC600
#
 sysname {hostname}
#
 vlan batch 100 200
#
 stp instance 0 priority 4096
#
 clock timezone Beijing add 08:00:00
#
hwtacacs-server template ops
 hwtacacs-server authentication 10.130.0.10
 hwtacacs-server shared-key cipher %^%#q0e]9Z3dC-0W{{lN$u@gX:6o<S1'|o+XO7)ONFd4C%^%#
#
aaa
 authentication-scheme default
 authorization-scheme default
 accounting-scheme default
 domain default
 domain default_admin
 local-user admin password irreversible-cipher $1c$Ro0mR%W*^5$Ocq`~Kt5-Qv`O*H0fC;4"!g#9U"UIP"0Pq%Gvp=0$
 local-user admin privilege level 15
 local-user admin service-type terminal ssh
 local-user netops password irreversible-cipher $1c$@.G{{6&M$#b$/N>I?]3Sa^5bX8xtQ(o"y'yS+E@|uAHLHe9FtS-P3$
 local-user netops privilege level 3
 local-user netops service-type ssh
#
ntp-service server disable
ntp-service unicast-server 10.130.0.1
#
interface Vlanif1
#
interface Vlanif100
 description mgmt
 ip address 10.130.0.2 255.255.255.0
#
interface MEth0/0/1
#
interface GigabitEthernet0/0/1
 port link-type access
 port default vlan 200
#
interface GigabitEthernet0/0/2
 port link-type access
 port default vlan 200
#
interface GigabitEthernet0/0/3
#
interface GigabitEthernet0/0/4
 shutdown
#
interface XGigabitEthernet0/0/1
 description uplink-to-000000
 port link-type trunk
 port trunk allow-pass vlan 100 200
#
interface XGigabitEthernet0/0/2
#
interface NULL0
#
 ip route-static 0.0.0.0 0.0.0.0 10.130.0.1
#
 snmp-agent
 snmp-agent local-engineid 800007DB03F4DEAF0A1B2C
 snmp-agent community read cipher %^%#X@5#;u2T!K&^7%3E|r0V@C$d`:B1b4l=;P=q!aE)e8Fq;b0%^%#
 snmp-agent sys-info contact noc@ecocloud.example
 snmp-agent sys-info location Shijiazhuang, Hebei
 snmp-agent sys-info version v2c v3
 snmp-agent target-host trap address udp-domain 10.130.0.20 params securityname cipher %^%#Cz&7F>S;1C-!QW0/+U^9h%^%# v2c
 snmp-agent usm-user v3 netops
 snmp-agent usm-user v3 netops group ops
 snmp-agent usm-user v3 netops authentication-mode sha cipher %^%#9G7y8XnS$>2[uGq/4VdN>QZ0Y4H*#%^%#
 snmp-agent usm-user v3 netops privacy-mode aes128 cipher %^%#a]3Z{{k)h9P-&Tg{{5S$Y;2lYH.#BKV%^%#
#
 stelnet server enable
 ssh server cipher aes256_ctr aes128_ctr
 ssh user admin
 ssh user admin authentication-type password
 ssh user admin service-type stelnet
#
user-interface con 0
 authentication-mode password
 set authentication password cipher $1a$>.Fl5#n]j~$vV<{{WKYb~1f,*4/1RDT;6ApT1kT8'A&RUa8Ys8Z5$
user-interface vty 0 4
 authentication-mode aaa
 protocol inbound ssh
user-interface vty 16 20
#
return
"""

_COMWARE_BANNER = """\

******************************************************************************
* Copyright (c) 2004-2021 New H3C Technologies Co., Ltd. All rights reserved.*
* Without the owner's prior written consent,                                 *
* no decompiling or reverse-engineering shall be allowed.                    *
******************************************************************************

"""

_COMWARE_VERSION = """\
H3C Comware Software, Version 7.1.070, Release 6616P12
Copyright (c) 2004-2021 New H3C Technologies Co., Ltd. All rights reserved.
H3C S5130S-28S-EI uptime is 0 weeks, 3 days, 2 hours, 21 minutes
Last reboot reason : Cold reboot

Boot image: flash:/s5130s_ei-cmw710-boot-r6616p12.bin
Boot image version: 7.1.070, Release 6616P12
  Compiled Mar 25 2021 16:00:00
System image: flash:/s5130s_ei-cmw710-system-r6616p12.bin
System image version: 7.1.070, Release 6616P12
  Compiled Mar 25 2021 16:00:00

Slot 1:
Uptime is 0 weeks,3 days,2 hours,21 minutes
S5130S-28S-EI with 1 Processor
BOARD TYPE:         S5130S-28S-EI
DRAM:               1024M bytes
FLASH:              512M bytes
PCB 1 Version:      VER.A
Bootrom Version:    147
CPLD 1 Version:     002
Release Version:    H3C S5130S-28S-EI-6616P12
Patch Version  :    None
Reboot Cause  :     ColdReboot
[SubSlot 0] 24GE+4SFP Plus
"""

_COMWARE_INTERFACES = """\
Brief information on interfaces in route mode:
Link: ADM - administratively down; Stby - standby
Protocol: (s) - spoofing
Interface            Link Protocol Primary IP      Description
InLoop0              UP   UP(s)    --
MGE0/0/0             DOWN DOWN     --
NULL0                UP   UP(s)    --
REG0                 UP   --       --
Vlan-interface100    UP   UP       10.130.1.2      mgmt

Brief information on interfaces in bridge mode:
Link: ADM - administratively down; Stby - standby
Speed: (a) - auto
Duplex: (a)/A - auto; H - half; F - full
Type: A - access; T - trunk; H - hybrid
Interface            Link Speed   Duplex Type PVID Description
GE1/0/1              UP   1G(a)   F(a)   A    100
GE1/0/2              DOWN auto    A      A    1
GE1/0/3              ADM  auto    A      A    1
XGE1/0/25            UP   10G     F      T    1    uplink-to-130000
XGE1/0/26            DOWN auto    A      A    1
"""

_COMWARE_CONFIG = """\
#
 version 7.1.070, Release 6616P12
#
 sysname {hostname}
#
 clock timezone Beijing add 08:00:00
 clock protocol ntp
#
 irf mac-address persistent timer
 irf auto-update enable
 undo irf link-delay
 irf member 1 priority 1
#
 lldp global enable
#
 password-recovery enable
#
vlan 1
#
vlan 100
 name mgmt
#
 stp global enable
#
radius scheme ops
 primary authentication 10.130.1.10
 key authentication cipher $c$3$Yq2Xo0YxTn3hUJcB0N5v1m0Hc8Ue6R4pKw==
#
interface NULL0
#
interface Vlan-interface100
 description mgmt
 ip address 10.130.1.2 255.255.255.0
#
interface GigabitEthernet1/0/1
 port link-mode bridge
 port access vlan 100
#
interface GigabitEthernet1/0/2
 port link-mode bridge
#
interface GigabitEthernet1/0/3
 port link-mode bridge
 shutdown
#
interface Ten-GigabitEthernet1/0/25
 port link-mode bridge
 description uplink-to-130000
 port link-type trunk
 port trunk permit vlan 1 100
#
interface Ten-GigabitEthernet1/0/26
 port link-mode bridge
#
 scheduler logfile size 16
#
line class aux
 user-role network-admin
#
line class vty
 user-role network-operator
#
line aux 0
 user-role network-admin
#
line vty 0 63
 authentication-mode scheme
 user-role network-operator
#
 ip route-static 0.0.0.0 0 10.130.1.1
#
 snmp-agent
 snmp-agent local-engineid 800063A280F4DEAF0A1B2D00000001
 snmp-agent community read cipher $c$3$kQn1L5/k7XaD1PPeQ6ri3M2dJcp5lg==
 snmp-agent community write cipher $c$3$Bk3vr7Tn+f6DiJGmE7VUJ0Z1I+Ez8Lu4 acl 2000
 snmp-agent sys-info version v2c v3
 snmp-agent target-host trap address udp-domain 10.130.1.20 params securityname public v2c
 snmp-agent usm-user v3 netops ops simple authentication-mode sha Auth-Key-2026 privacy-mode aes128 Priv-Key-2026
#
 ssh server enable
#
domain system
#
 domain default enable system
#
role name level-15
 description Predefined level-15 role
#
local-user admin class manage
 password hash $h$6$q3eDtXv1GxPJr2Qb$0Kx2y1P3vLqT8M6w9s4nHcZ7rJ5aU1fE3dG6hB8kN2pR4tV7xY0zA9cD2eF5gH8jK1mN4pQ7s==
 service-type ssh terminal
 authorization-attribute user-role network-admin
 authorization-attribute user-role network-operator
#
return
"""


@dataclass(frozen=True)
class _Profile:
    """What one platform's CLI looks like."""

    banner: str
    prompt: str  # format with hostname
    default_hostname: str
    paging_command: str
    paging_answer: str
    responses: dict[str, str]  # full command → output (format with hostname)
    error: str  # format with caret (spaces before the ^ mark)


PLATFORMS: dict[str, _Profile] = {
    "huawei": _Profile(
        banner=_HUAWEI_BANNER,
        prompt="<{hostname}>",
        default_hostname="HB-130000",
        paging_command="screen-length 0 temporary",
        paging_answer="Info: The configuration takes effect on the current user terminal interface only.\n",
        responses={
            "display version": _HUAWEI_VERSION,
            "display interface brief": _HUAWEI_INTERFACES,
            "display current-configuration": _HUAWEI_CONFIG,
        },
        error="{caret}^\nError: Unrecognized command found at '^' position.\n",
    ),
    "hp_comware": _Profile(
        banner=_COMWARE_BANNER,
        prompt="<{hostname}>",
        default_hostname="H3C",
        paging_command="screen-length disable",
        paging_answer="",
        responses={
            "display version": _COMWARE_VERSION,
            "display interface brief": _COMWARE_INTERFACES,
            "display current-configuration": _COMWARE_CONFIG,
        },
        error="{caret}^\n % Unrecognized command found at '^' position.\n",
    ),
}

_QUIT = {"quit", "exit", "logout"}


def _match(words: list[str], command: str) -> bool:
    """Whether ``words`` abbreviate ``command`` word by word (VRP/Comware accept unique prefixes)."""
    full = command.split()
    return len(words) == len(full) and all(f.startswith(w) for w, f in zip(words, full, strict=True))


def answer(profile: _Profile, hostname: str, line: str) -> str | None:
    """The CLI's answer to one command line (without the prompt); ``None`` means "end the session"."""
    words = line.lower().split()
    if not words:
        return ""
    if words[0] in _QUIT and len(words) == 1:
        return None
    if words == profile.paging_command.split():
        return profile.paging_answer
    candidates = [cmd for cmd in profile.responses if _match(words, cmd)]
    if len(candidates) == 1:
        return profile.responses[candidates[0]].format(hostname=hostname)
    prompt_width = len(profile.prompt.format(hostname=hostname))
    return profile.error.format(caret=" " * (prompt_width + len(line) - len(line.lstrip())))


# ------------------------------------------------------------------------------------------------------------
# The server (child process; asyncssh)
# ------------------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> None:
    import asyncssh

    profile = PLATFORMS[args.platform]
    hostname = args.hostname or profile.default_hostname
    password = os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)
    prompt = profile.prompt.format(hostname=hostname)
    authorized = None
    if args.authorized_key:
        authorized = asyncssh.read_public_key(args.authorized_key)
    if args.host_key:
        path = Path(args.host_key)
        if path.exists():
            host_key = asyncssh.read_private_key(path)
        else:
            host_key = asyncssh.generate_private_key("ssh-ed25519")
            host_key.write_private_key(path)
    else:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
    log_path = Path(args.log) if args.log else None

    def record(line: str) -> None:
        if log_path is not None and line.strip():
            with log_path.open("a", encoding="utf-8") as out:
                out.write(line.rstrip("\r\n") + "\n")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, pw: str) -> bool:
            ok = username == args.username and pw == password
            record(f"# password login {username}: {'accepted' if ok else 'refused'}")
            return ok

        def public_key_auth_supported(self) -> bool:
            return authorized is not None

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            ok = authorized is not None and username == args.username and key.public_data == authorized.public_data
            record(f"# public key login {username}: {'accepted' if ok else 'refused'}")
            return ok

    async def session(process: asyncssh.SSHServerProcess[str]) -> None:
        # Like a device's VTY: characters are echoed as they arrive, and each line's newline, output and next
        # prompt are written in order. (asyncssh's line editor would echo every queued newline before the
        # prompts of the lines before it, giving "<H3C><H3C>" on one line, which no device prints.)
        def write(text: str) -> None:
            try:
                process.stdout.write(text.replace("\r\n", "\n").replace("\n", "\r\n"))
            except (OSError, asyncssh.Error):  # the client closed: still read (and log) what it sent before
                pass

        try:
            if process.command is not None:  # exec request: one command, no prompt
                record(process.command)
                write(answer(profile, hostname, process.command) or "")
                process.exit(0)
                return
            write(profile.banner + prompt)
            line = ""
            after_cr = False
            while True:
                try:
                    data = await process.stdin.read(4096)
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, asyncssh.SignalReceived):
                    continue
                if not data:  # EOF
                    break
                for char in data:
                    if char == "\n" and after_cr:  # CR LF is one end of line
                        after_cr = False
                        continue
                    after_cr = char == "\r"
                    if char in "\r\n":
                        record(line)
                        out = answer(profile, hostname, line.strip())
                        if out is None:
                            write("\n")
                            process.exit(0)
                            return
                        write("\n" + out + prompt)
                        line = ""
                    elif char in "\x08\x7f":
                        if line:
                            line = line[:-1]
                            write("\x08 \x08")
                    elif char.isprintable():
                        line += char
                        write(char)
            process.exit(0)
        except (OSError, asyncssh.Error):
            process.close()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncssh.create_server(
            Server, args.host, args.port, server_host_keys=[host_key], process_factory=session,
            encoding="utf-8", line_editor=False, login_timeout=30, keepalive_interval=0)
        public = host_key.export_public_key("openssh").decode().split()
        ready = {"host": args.host, "port": server.get_port(), "host_key": f"{public[0]} {public[1]}",
                 "platform": args.platform, "prompt": prompt}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        while not stop.is_set():  # also stop when the parent died without stopping us (no orphans)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                if args.parent_pid and os.getppid() != args.parent_pid:
                    break
        server.close()
        await server.wait_closed()

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of the child process: serve until SIGTERM/SIGINT; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ecocloud_ops.lab.fake_cli",
                                     description="A fake Huawei VRP / H3C Comware SSH CLI for lab tests.")
    parser.add_argument("--platform", choices=sorted(PLATFORMS), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port (printed on the ready line)")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--hostname", default="", help="device name in the prompt and the configuration")
    parser.add_argument("--host-key", default="", help="OpenSSH private key file (created if missing)")
    parser.add_argument("--authorized-key", default="", help="public key file allowed to log in as --username")
    parser.add_argument("--log", default="", help="append every command line received to this file")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", args.hostname or "x"):
        parser.error("--hostname: letters, digits, '.', '_' and '-' only")
    _serve(args)
    return 0


# ------------------------------------------------------------------------------------------------------------
# Parent side: start and stop the child
# ------------------------------------------------------------------------------------------------------------


class FakeCliServer:
    """The fake CLI as a child process on a loopback port (``with FakeCliServer("huawei") as cli: cli.port``).

    ``host_key`` is the server's public key as ``"<keytype> <base64>"``; ``log_file`` (if given) receives every
    command line the server got.
    """

    def __init__(self, platform: str, *, host: str = "127.0.0.1", username: str = DEFAULT_USERNAME,
                 password: str = DEFAULT_PASSWORD, hostname: str = "", host_key_file: Path | None = None,
                 authorized_key_file: Path | None = None, log_file: Path | None = None) -> None:
        """Plan the server (nothing runs before :meth:`start`). Raises ValueError for an unknown platform."""
        if platform not in PLATFORMS:
            raise ValueError(f"unknown fake CLI platform {platform!r} (one of {sorted(PLATFORMS)})")
        self.platform = platform
        self.host = host
        self.username = username
        self.password = password
        self.hostname = hostname or PLATFORMS[platform].default_hostname
        self.host_key_file = host_key_file
        self.authorized_key_file = authorized_key_file
        self.log_file = log_file
        self.port = 0
        self.host_key = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start the child and wait for its ready line.

        Raises RuntimeError (with the child's stderr) if it exits or stays silent for ``timeout`` seconds.
        """
        if self._proc is not None:
            raise RuntimeError("the fake CLI server is already running")
        cmd = [sys.executable, "-m", "ecocloud_ops.lab.fake_cli", "--platform", self.platform, "--host", self.host,
               "--port", "0", "--username", self.username, "--hostname", self.hostname, "--parent-pid",
               str(os.getpid())]
        if self.host_key_file is not None:
            cmd += ["--host-key", str(self.host_key_file)]
        if self.authorized_key_file is not None:
            cmd += ["--authorized-key", str(self.authorized_key_file)]
        if self.log_file is not None:
            cmd += ["--log", str(self.log_file)]
        env = {**os.environ, PASSWORD_ENV: self.password}
        proc = self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stderr is not None
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    break
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        try:
            ready: dict[str, Any] = json.loads(line)
            self.port = int(ready["port"])
            self.host_key = str(ready["host_key"])
        except (ValueError, KeyError, TypeError):
            _reap(proc)
            err = proc.stderr.read().decode(errors="replace").strip()[-1500:]
            self.stop()
            raise RuntimeError(f"fake CLI ({self.platform}) did not start: {err or line!r}") from None

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and reap it. Idempotent; never raises."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _reap(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> FakeCliServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait up to 5 s, then SIGKILL; the child is reaped afterwards."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
