"""SSH adapter: run CLI commands on network devices and Linux hosts (netmiko over paramiko), with host-key pinning.

The platform logs in to devices to read their version, interface status and running configuration
(:data:`PLATFORM_COMMANDS`), keeps the configuration with secrets masked (:func:`mask_secrets`) and shows
changes as diffs (:func:`config_diff`). Only this module's own frozen dataclasses cross the boundary; netmiko
and paramiko objects and exceptions never do.

Result contract of :func:`run_commands`:

* one :class:`CommandResult` per ``(target, commands)`` pair, in input order; a bad device is a result, never an
  exception;
* ``outputs`` maps each command that completed to its output (netmiko strips the echo and the trailing prompt;
  leading and trailing blank lines are removed); on failure it holds the commands that completed before it;
* ``host_key`` is the server's host key as ``"<keytype> <base64>"`` once the login succeeded (pinned key
  matched, or first contact), also when a command failed afterwards; ``None`` when no session was established
  (refused, timeout, authentication failure, changed key);
* ``error_kind`` is one of :data:`ERROR_KINDS`:

  - ``timeout``: no TCP answer, no SSH banner, no login prompt or no command output within the budget
    (``timeout`` seconds; see :func:`run_commands`);
  - ``unreachable``: the TCP connect was refused (no SSH server listening) or a host/network unreachable came
    back;
  - ``auth_failure``: the server refused the user name, password or key;
  - ``host_key_changed``: ``known_host_key`` is set and the server presented another key (or another key type).
    The connection is dropped right after the key exchange: no password and no key signature is sent. The
    message names both SHA256 fingerprints (as ``ssh-keygen -l`` prints them);
  - ``error``: anything else (unresolvable host name, unsupported platform, unreadable key file, a command
    the device rejected — its CLI error line is in ``error`` and its output in ``outputs`` —, a connection
    lost mid-session).

* ``ok`` is ``True`` (with ``error``/``error_kind`` ``None``) when every command ran without a CLI error.

Host-key pinning (trust on first use): with ``known_host_key=None`` any key is accepted and returned in
``host_key`` for the caller to store. With a pinned key, netmiko runs with ``ssh_strict=True`` and a temporary
known_hosts file that holds only the pinned key (``alt_host_keys``/``alt_key_file``; the user's and the
system's known_hosts are never read). paramiko then offers the pinned key type first and compares the key
right after the key exchange, before any authentication: a mismatch raises ``BadHostKeyException`` and no
credential leaves this process.

Every message names the device as ``host:port (name)``; none contains a password. netmiko's DEBUG log carries
the raw device output (configurations before masking): keep the ``netmiko`` logger at INFO or above.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import os
import re
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, TypeAlias

from ecocloud_ops.errors import ValidationFailed

__all__ = [
    "ERROR_KINDS",
    "MASK",
    "PLATFORM_COMMANDS",
    "CommandResult",
    "ErrorKind",
    "PlatformCommands",
    "SshTarget",
    "config_diff",
    "host_key_fingerprint",
    "mask_secrets",
    "run_commands",
]

ErrorKind: TypeAlias = Literal["timeout", "unreachable", "auth_failure", "host_key_changed", "error"]
ERROR_KINDS: tuple[str, ...] = ("timeout", "unreachable", "auth_failure", "host_key_changed", "error")

#: host key algorithms accepted in ``known_host_key`` (what paramiko can verify)
_KEY_TYPES = frozenset({"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                        "ecdsa-sha2-nistp521"})


# --------------------------------------------------------------------------------------------------------------
# Our own data classes
# --------------------------------------------------------------------------------------------------------------


def _parse_host_key(value: str) -> tuple[str, bytes]:
    """``"<keytype> <base64>[ comment]"`` → (keytype, blob); raises ValidationFailed when malformed."""
    parts = value.split()
    if len(parts) < 2:
        raise ValidationFailed("known_host_key must look like '<keytype> <base64>'")
    keytype, b64 = parts[0], parts[1]
    if keytype not in _KEY_TYPES:
        raise ValidationFailed(f"unsupported host key type {keytype!r} (one of {sorted(_KEY_TYPES)})")
    try:
        blob = base64.b64decode(b64, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"known_host_key: invalid base64 key data ({exc})") from None
    if inner != keytype:
        raise ValidationFailed(f"known_host_key: key data is of type {inner!r}, not {keytype!r}")
    return keytype, blob


def host_key_fingerprint(host_key: str) -> str:
    """Return the SHA256 fingerprint of ``"<keytype> <base64>"`` as ``ssh-keygen -l`` prints it (``SHA256:…``).

    Raises ecocloud_ops.errors.ValidationFailed when the key is malformed.
    """
    _keytype, blob = _parse_host_key(host_key)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class SshTarget:
    """One device: ``SshTarget("10.1.2.3", username="ops", password="…", platform="huawei", name="hb-core-1")``.

    ``platform`` is a netmiko device type (``linux``, ``huawei``, ``hp_comware``, ``cisco_ios``, ``ruijie_os``…).
    ``key_file`` is a private key file (OpenSSH or PEM); if it is encrypted, ``password`` is its pass phrase
    (and is also tried as the login password after the key). ``known_host_key`` is the pinned host key as
    ``"<keytype> <base64>"`` (``None``: first contact, any key is accepted). The password is left out of ``repr``.
    Raises ecocloud_ops.errors.ValidationFailed for an empty host/user/platform, a bad port, neither password
    nor key file, or a malformed ``known_host_key``.
    """

    host: str
    _: KW_ONLY
    port: int = 22
    username: str
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    platform: str
    name: str = ""
    known_host_key: str | None = None

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            raise ValidationFailed(f"invalid SSH host {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise ValidationFailed(f"invalid SSH port {self.port}")
        if not self.username:
            raise ValidationFailed("an SSH target needs a user name")
        if not self.platform:
            raise ValidationFailed("an SSH target needs a platform (netmiko device type)")
        if self.password is None and not self.key_file:
            raise ValidationFailed("an SSH target needs a password or a key file")
        if self.known_host_key is not None:
            _parse_host_key(self.known_host_key)

    @property
    def label(self) -> str:
        """``host:port (name)``, as used in every message about this device."""
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"{addr} ({self.name})" if self.name else addr


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one device's commands (see the module docstring for ``ok``, ``error_kind``, ``host_key``)."""

    target: SshTarget
    ok: bool
    outputs: dict[str, str]
    error: str | None
    error_kind: ErrorKind | None
    host_key: str | None
    elapsed_ms: float


@dataclass(frozen=True)
class PlatformCommands:
    """The read-only commands the platform runs on one kind of device.

    ``checks``: version and interface status; ``config``: the command that prints the running configuration.
    """

    checks: tuple[str, ...]
    config: str

    def all(self) -> list[str]:
        """Return the checks followed by the configuration command."""
        return [*self.checks, self.config]


#: per netmiko device type. The account must land where these commands work (Cisco/Ruijie: privilege 15,
#: ``show running-config`` needs it; netmiko's ``enable()`` is never called). The Linux "configuration" is the
#: host name, the IPv4 addresses (one line each, ``-o``: no link state in it) and the IPv4 routes: real, and
#: stable as long as no link goes down (the kernel drops the routes of a downed link).
PLATFORM_COMMANDS: dict[str, PlatformCommands] = {
    "linux": PlatformCommands(checks=("uname -a", "ip -brief link"),
                              config="hostname; ip -4 -o addr show; ip -4 route show"),
    "huawei": PlatformCommands(checks=("display version", "display interface brief"),
                               config="display current-configuration"),
    "hp_comware": PlatformCommands(checks=("display version", "display interface brief"),
                                   config="display current-configuration"),
    "cisco_ios": PlatformCommands(checks=("show version", "show ip interface brief"), config="show running-config"),
    "ruijie_os": PlatformCommands(checks=("show version", "show ip interface brief"), config="show running-config"),
}

#: a line of command output that means the device rejected the command (per platform)
_CLI_ERRORS: dict[str, re.Pattern[str]] = {
    "linux": re.compile(r"^.*: (?:command not found|No such file or directory)$", re.M),
    "huawei": re.compile(r"^\s*Error: .*$", re.M),
    "hp_comware": re.compile(r"^\s*% (?:Unrecognized|Incomplete|Too many|Wrong parameter|Ambiguous).*$", re.M),
    "cisco_ios": re.compile(r"^% (?:Invalid input|Incomplete command|Ambiguous command|Unknown command).*$", re.M),
    "ruijie_os": re.compile(r"^% (?:Invalid input|Incomplete command|Ambiguous command|Unknown command).*$", re.M),
}


# --------------------------------------------------------------------------------------------------------------
# Running commands
# --------------------------------------------------------------------------------------------------------------


class _Failure(Exception):
    """A classified failure inside one device's worker (never leaves this module)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def run_commands(targets: list[tuple[SshTarget, list[str]]], *, timeout: float,
                 concurrency: int = 8) -> list[CommandResult]:
    """Log in to each target and run its commands, at most ``concurrency`` devices at a time (threads).

    ``timeout`` is the per-device budget in seconds. The TCP connect gets all of it; the SSH banner and key
    exchange, the authentication and each wait for the prompt while logging in each get what is left after the
    connect; every command gets what is left of ``timeout`` since the device's start, and once nothing is left
    the remaining commands are not sent. So a dead, cut-off or silent device takes at most ``timeout`` and no
    command runs past it, but a device that answers and then stalls at several login steps can take a few
    times ``timeout`` (each step is bounded, not their sum). The logout (the driver's ``quit``/``exit``,
    without waiting for an answer) counts in ``elapsed_ms``.

    Returns:
        One :class:`CommandResult` per ``(target, commands)`` pair, in input order (see the module docstring).
        An empty command list only logs in (and returns the host key).

    Raises:
        Nothing for a failing device: timeouts, refused or cut connections, wrong credentials, changed host
        keys, rejected commands are results. Only ecocloud_ops.errors.ValidationFailed for ``timeout <= 0``
        or ``concurrency < 1``.
    """
    if timeout <= 0 or concurrency < 1:
        raise ValidationFailed("timeout must be > 0 and concurrency >= 1")
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(concurrency, len(targets)), thread_name_prefix="ssh") as pool:
        return list(pool.map(lambda item: _run_one(item[0], list(item[1]), timeout), targets))


@dataclass
class _Progress:
    """What one device's session got so far (kept when it fails half-way)."""

    outputs: dict[str, str] = field(default_factory=dict)
    host_key: str | None = None


def _run_one(target: SshTarget, commands: list[str], timeout: float) -> CommandResult:
    started = time.perf_counter()
    progress = _Progress()
    kind: ErrorKind | None = None
    message: str | None = None
    try:
        _session(target, commands, timeout, started, progress)
    except _Failure as exc:
        kind, message = exc.kind, exc.message
    except Exception as exc:  # one bad device is a result, never an exception
        try:
            kind, message = _classify(target, exc)
        except Exception:  # a surprise inside the translation must not escape either
            kind, message = "error", f"{type(exc).__name__}: {exc}"
    elapsed = (time.perf_counter() - started) * 1000.0
    if kind is None:
        return CommandResult(target, True, progress.outputs, None, None, progress.host_key, elapsed)
    return CommandResult(target, False, progress.outputs, f"{target.label}: {message}", kind,
                         None if kind == "host_key_changed" else progress.host_key, elapsed)


def _session(target: SshTarget, commands: list[str], timeout: float, started: float, progress: _Progress) -> None:
    """Connect, run the commands (recording host key and outputs in ``progress``), log out. Raises on failure."""
    import paramiko
    from netmiko import ConnectHandler
    from netmiko.ssh_dispatcher import platforms

    if target.platform not in platforms or target.platform.endswith(("_telnet", "_serial")):
        raise _Failure("error", f"unsupported SSH platform {target.platform!r} (a netmiko SSH device type)")
    deadline = started + timeout
    pkey = _load_key(target, paramiko) if target.key_file else None
    sock = _connect_tcp(target, timeout)
    try:
        with _KnownHostsFile(target) as known_hosts:
            left = max(0.1, deadline - time.perf_counter())
            params: dict[str, Any] = {
                "device_type": target.platform, "host": target.host, "port": target.port,
                "username": target.username, "password": target.password, "pkey": pkey,
                "use_keys": False, "allow_agent": False, "system_host_keys": False,
                "ssh_strict": known_hosts is not None, "alt_host_keys": known_hosts is not None,
                "alt_key_file": known_hosts or "", "sock": sock, "conn_timeout": left, "banner_timeout": left,
                "auth_timeout": left, "read_timeout_override": left, "fast_cli": True,
            }
            conn = ConnectHandler(**params)
        try:
            progress.host_key = _presented_key(conn)
            error_pattern = _CLI_ERRORS.get(target.platform)
            for command in commands:
                left = deadline - time.perf_counter()
                if left <= 0.05:
                    raise _Failure("timeout", f"budget of {timeout:g}s used up before {command!r}")
                conn.read_timeout_override = left  # bounds this command's wait for the prompt
                try:
                    raw = conn.send_command(command, read_timeout=left)
                except Exception as exc:
                    kind, text = _classify(target, exc)
                    raise _Failure(kind, f"{command!r}: {text}") from exc
                output = str(raw).strip("\r\n")
                progress.outputs[command] = output
                rejected = error_pattern.search(output) if error_pattern is not None else None
                if rejected:
                    raise _Failure("error", f"{command!r} rejected by the device: {rejected.group(0).strip()}")
        finally:
            # netmiko's cleanup() checks for config mode before its logout command; for huawei that read waits
            # ~2 s for silence. We never enter config mode: a tiny read timeout makes that check fail at once
            # (disconnect() swallows cleanup errors), then the logout command is written and the session closed.
            conn.read_timeout_override = 0.05
            conn.disconnect()
    finally:
        sock.close()


def _load_key(target: SshTarget, paramiko: Any) -> Any:
    """The private key of ``target.key_file`` (``password`` as pass phrase if it is encrypted)."""
    assert target.key_file is not None
    path = os.path.expanduser(target.key_file)
    try:
        try:
            return paramiko.PKey.from_path(path)
        except (paramiko.PasswordRequiredException, TypeError):  # TypeError: cryptography's "password-protected"
            if target.password is None:
                raise _Failure("error", f"key file {path} is encrypted and no pass phrase (password) is set") from None
            return paramiko.PKey.from_path(path, target.password.encode())
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise _Failure("error", f"cannot load key file {path}: {exc}") from None


def _connect_tcp(target: SshTarget, timeout: float) -> socket.socket:
    """The TCP connection to the device's SSH port (we own it: clear timeout/refused/unreachable outcomes)."""
    try:
        return socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.gaierror as exc:
        raise _Failure("error", f"cannot resolve host name {target.host!r}: {exc.strerror or exc}") from None
    except TimeoutError:
        raise _Failure("timeout", f"no answer to the TCP connect within {timeout:g}s") from None
    except ConnectionRefusedError:
        raise _Failure("unreachable", "connection refused (no SSH server listening)") from None
    except OSError as exc:
        raise _Failure("unreachable", f"TCP connect failed: {exc.strerror or exc}") from None


class _KnownHostsFile:
    """A temporary known_hosts file holding only the pinned key (path), or ``None`` on first contact."""

    def __init__(self, target: SshTarget) -> None:
        self._target = target
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> str | None:
        pinned = self._target.known_host_key
        if pinned is None:
            return None
        self._dir = tempfile.TemporaryDirectory(prefix="ecocloud-ssh-")
        path = os.path.join(self._dir.name, "known_hosts")
        host, port = self._target.host, self._target.port
        entry = host if port == 22 else f"[{host}]:{port}"  # how paramiko looks the host up
        keytype, b64 = pinned.split()[:2]
        with open(path, "w", encoding="ascii") as out:
            out.write(f"{entry} {keytype} {b64}\n")
        return path

    def __exit__(self, *exc_info: object) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def _presented_key(conn: Any) -> str | None:
    client = getattr(conn, "remote_conn_pre", None)
    transport = client.get_transport() if client is not None else None
    if transport is None:
        return None
    key = transport.get_remote_server_key()
    return f"{key.get_name()} {key.get_base64()}"


def _exc_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _key_label(key: Any) -> str:
    """``<keytype> SHA256:…`` of a paramiko key (any type, no validation)."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def _classify(target: SshTarget, exc: BaseException) -> tuple[ErrorKind, str]:
    """Translate a netmiko/paramiko/socket exception (and what it was raised from) into our kind + message."""
    import paramiko
    from netmiko.exceptions import NetmikoTimeoutException, ReadException, ReadTimeout

    chain = list(_exc_chain(exc))
    for item in chain:
        if isinstance(item, paramiko.BadHostKeyException):
            return "host_key_changed", (
                f"host key changed: pinned {_key_label(item.expected_key)}, server presented {_key_label(item.key)}; "
                f"connection dropped before authentication (no password sent)")
    for item in chain:
        if isinstance(item, paramiko.BadAuthenticationType):
            return "auth_failure", f"authentication refused: the server allows only {', '.join(item.allowed_types)}"
        if isinstance(item, paramiko.AuthenticationException):
            return "auth_failure", "authentication failed (wrong user name, password or key)"
    text = " ".join(str(item) for item in chain)
    if "not found in known_hosts" in text and target.known_host_key is not None:
        return "host_key_changed", (f"host key changed: the server did not present the pinned key "
                                    f"{host_key_fingerprint(target.known_host_key)}; connection dropped before "
                                    f"authentication (no password sent)")
    if "No existing session" in text:  # paramiko: the key exchange did not finish within the timeout
        return "timeout", "SSH handshake (banner, key exchange) not completed within the budget"
    if any(isinstance(item, ReadTimeout) for item in chain):
        return "timeout", "no prompt after the output within the budget"
    if "Error reading SSH protocol banner" in text:
        if "timed out" in text or any(isinstance(item, TimeoutError) for item in chain):
            return "timeout", "no SSH banner within the budget"
        return "error", "connection closed before the SSH banner"
    if any(isinstance(item, TimeoutError) for item in chain):
        return "timeout", "no answer within the budget"
    if any(isinstance(item, NetmikoTimeoutException) for item in chain):
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        if "Pattern not detected" in text or "Timed out" in text:
            return "timeout", f"no prompt within the budget ({first})"
        return "error", f"SSH session setup failed: {first}"
    if any(isinstance(item, ReadException) for item in chain):
        return "error", f"unexpected CLI output: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
    if any(isinstance(item, EOFError | ConnectionError) for item in chain):
        return "error", f"connection lost ({type(exc).__name__}: {exc})"
    if isinstance(exc, paramiko.SSHException | OSError):
        return "error", f"SSH error: {exc}"
    return "error", f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------------------
# Masking secrets and diffing configurations
# --------------------------------------------------------------------------------------------------------------

#: what a masked secret becomes
MASK = "******"

# A secret token: a Huawei %^%#…%^%# cipher (may hold any character), a quoted string, or a word.
_TOK = r"""(?P<s>%\^%#.*?%\^%#|"[^"\n]*"|\S+)"""
# Optional diff marker / indentation at the start of a line (masking also works on unified diffs).
_LEAD = r"^(?:[ +-](?=\s*\S))?[ \t]*"
_NOT_MODE = r"(?!(?:authentication-mode|privacy-mode|plain|cipher)\b)"

_LINE_PATTERNS: tuple[str, ...] = (
    # SNMP communities: Huawei/H3C, Cisco/Ruijie, and the v1/v2c trap targets (their "user" is the community)
    rf"\bsnmp-agent\s+community\s+(?:read|write|notify)\s+(?:(?:cipher|simple)\s+)?{_TOK}",
    rf"\bsnmp-server\s+community\s+(?:[0-9]\s+)?{_TOK}",
    rf"\bsecurityname\s+(?:(?:cipher|simple)\s+)?{_TOK}",
    rf"\bsnmp-server\s+host\s+\S+\s+(?:(?:traps|informs)\s+)?(?:version\s+(?:1|2c)\s+)?"
    rf"(?!(?:version|traps|informs)\b){_TOK}",
    # SNMPv3 users: Huawei/H3C authentication-mode/privacy-mode, Cisco auth/priv
    rf"\bauthentication-mode\s+(?:md5|sha\S*|sm3)\s+(?!\d+\s+(?:cipher|plain|simple)\b)"
    rf"(?:(?:cipher|simple)\s+)?{_TOK}",
    rf"\bauthentication-mode\s+(?:md5|hmac-md5|hmac-sha256|sha\S*)\s+\d+\s+(?:cipher|plain|simple)\s+{_TOK}",
    rf"\bprivacy-mode\s+(?:aes\d*|des\d*|3des\S*|sm4)\s+(?:(?:cipher|simple)\s+)?{_TOK}",
    rf"\bauth\s+(?:md5|sha\S*)\s+{_TOK}",
    rf"\bpriv\s+(?:3des|des|aes\s+\d+|aes\d*)\s+{_TOK}",
    # passwords and secrets: Cisco "password 7 X", "secret 5 X", "enable secret X"; Huawei/H3C
    # "password cipher|irreversible-cipher|simple X", H3C "password hash X"
    rf"\bpassword\s+(?:(?:[0-9]|cipher|irreversible-cipher|simple|hash|plain|encrypted)\s+)?{_TOK}",
    rf"\bsecret\s+(?:[0-9]\s+)?{_TOK}",
    # keys
    rf"\bpre-shared-key\s+address\s+.*?(?<![\w-])key\s+(?:[0-9]\s+)?{_TOK}",
    rf"\b(?:pre-)?shared-key\s+(?!address\b)(?:(?:local|remote)\s+)?(?:(?:cipher|simple|plain|ascii|hex|[0-9])\s+)?"
    rf"{_TOK}",
    rf"\bkey-string\s+(?:[0-9]\s+)?{_TOK}",
    rf"\bcrypto\s+isakmp\s+key\s+(?:[0-9]\s+)?{_TOK}",
    rf"\b(?:tacacs-server|radius-server)\b.*?(?<![\w-])key\s+(?:[0-9]\s+|(?:cipher|simple)\s+)?{_TOK}",
    rf"{_LEAD}key\s+(?:[0-9]\s+(?=\S)|(?!\d+\s*$)(?!(?:chain|config-key|generate|zeroize|pubkey-chain)\b))"
    rf"(?:(?:authentication|accounting)\s+)?(?:(?:cipher|simple)\s+)?{_TOK}",
    rf"\bauthentication-key\s+(?:\d+\s+md5\s+|[0-9]\s+)?{_TOK}",
    rf"\bmessage-digest-key\s+\d+\s+md5\s+(?:[0-9]\s+)?{_TOK}",
    # any other Huawei/H3C ciphertext or plaintext secret ("... cipher X", "... simple [plain] X"); not
    # algorithm lists such as "ssh server cipher aes256_ctr"
    rf"(?<!ssh server )(?<!ssh client )(?<!algorithm )\b(?:irreversible-)?cipher\s+{_NOT_MODE}{_TOK}",
    rf"\bsimple\s+(?:(?:plain|cipher)\s+)?{_NOT_MODE}{_TOK}",
    rf"\bplain\s+{_TOK}",
)
# Written with \s for legibility; compiled with blanks only (spaces, tabs), so that no rule crosses a line.
_LINE_RULES: list[re.Pattern[str]] = [
    re.compile(p.replace(r"\s+", r"[ \t]+").replace(r"\s*", r"[ \t]*"), re.I | re.M) for p in _LINE_PATTERNS
]

# /etc/shadow (9 fields, numbers in 3-8) and /etc/passwd with a hash in field 2
_SHADOW = re.compile(r"^(?P<pre>(?:[ +-])?[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?:)(?P<s>[^:\n]*)"
                     r"(?P<post>:\d*:\d*:\d*:\d*:\d*:\d*:[^:\n]*)$", re.M)
_PASSWD = re.compile(r"^(?P<pre>(?:[ +-])?[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?:)(?P<s>[^:\n]*)"
                     r"(?P<post>:\d+:\d+:[^:\n]*:[^:\n]*:[^:\n]*)$", re.M)
# crypt(3) and vendor hashes anywhere: $1$ $5$ $6$ $2b$ $y$ (Linux), $8$ $9$ (Cisco), $1a$ $1c$ (Huawei),
# $c$3$ $h$6$ (H3C)
_CRYPT = re.compile(r"""(?<![^\s:="'])\$(?:[0-9][a-z]?|2[abxy]|y|gy|sha1|md5|[a-z]\$\d)\$\S+""")
_PEM = re.compile(r"(?P<begin>-----BEGIN (?P<what>[A-Z0-9 ]*)PRIVATE KEY-----)(?P<body>.*?)"
                  r"(?P<end>-----END (?P=what)PRIVATE KEY-----|\Z)", re.S)
_LOCKED = re.compile(r"[*!]*|x")


def _mask_group(match: re.Match[str]) -> str:
    text = match.group(0)
    offset = match.start()
    return text[:match.start("s") - offset] + MASK + text[match.end("s") - offset:]


def _mask_account(match: re.Match[str]) -> str:
    secret = match.group("s")
    if _LOCKED.fullmatch(secret) or secret == MASK:
        return match.group(0)
    return match.group("pre") + MASK + match.group("post")


def _mask_pem(match: re.Match[str]) -> str:
    newline = "\n" if match.group("body").startswith("\n") else ""
    end = match.group("end")
    return f"{match.group('begin')}{newline}{MASK}{chr(10) if end else ''}{end}"


def mask_secrets(config: str) -> str:
    """Return ``config`` (a device configuration, command output or unified diff) with its secrets masked.

    Each secret becomes ``******`` and the rest of its line stays: SNMP communities (Huawei/H3C
    ``snmp-agent community read|write [cipher|simple] X``, Cisco/Ruijie ``snmp-server community X``, trap
    targets' ``securityname X``/``snmp-server host … X``), SNMPv3 keys, passwords and their hashes/ciphers
    (``password [cipher|irreversible-cipher|simple|hash|7] X``, ``secret 5 X``, ``enable secret X``,
    ``local-user x password …``), keys (``pre-shared-key``, ``shared-key``, ``key-string``, TACACS/RADIUS
    ``key``, ``crypto isakmp key``, OSPF/NTP authentication keys), any other ``cipher X``/``simple X``,
    crypt hashes (``$1$``, ``$5$``, ``$6$``, ``$y$``, Cisco ``$8$``/``$9$``, Huawei ``$1a$``/``$1c$``, H3C
    ``$c$3$``/``$h$6$``), ``/etc/shadow``- and ``/etc/passwd``-style lines (locked markers ``*``/``!``/``x``
    stay) and the body of ``-----BEGIN … PRIVATE KEY-----`` blocks.

    Idempotent (masking twice changes nothing). It errs on the side of masking: a word after ``simple`` or
    ``cipher`` in a description is masked too. Changed secrets become invisible in a masked diff.
    Never raises.
    """
    text = _PEM.sub(_mask_pem, config)
    text = _SHADOW.sub(_mask_account, text)
    text = _PASSWD.sub(_mask_account, text)
    for rule in _LINE_RULES:
        text = rule.sub(_mask_group, text)
    return _CRYPT.sub(MASK, text)


def config_diff(old: str, new: str, *, fromfile: str = "old", tofile: str = "new", context: int = 3) -> str:
    """Return the unified diff (difflib) from ``old`` to ``new`` after masking secrets on both sides.

    Line endings are normalized (CRLF → LF). Returns ``""`` when the masked texts are equal — including when
    only secrets changed. Never raises.
    """
    old_lines = mask_secrets(old.replace("\r\n", "\n")).splitlines()
    new_lines = mask_secrets(new.replace("\r\n", "\n")).splitlines()
    lines = difflib.unified_diff(old_lines, new_lines, fromfile=fromfile, tofile=tofile, n=context, lineterm="")
    out = "\n".join(lines)
    return out + "\n" if out else ""
