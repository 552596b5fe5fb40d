"""The SSH adapter (ecocloud_ops.adapters.ssh) against real peers: OpenSSH sshd in the network lab (``linux``)
and the fake Huawei VRP / H3C Comware CLIs (ecocloud_ops.lab.fake_cli) on loopback ports, with netmiko's real
``linux``, ``huawei`` and ``hp_comware`` drivers.

Needs root and the Debian packages iproute2, openssh-server, openssh-client, util-linux (see tests/lab/test_netlab.py),
plus netmiko and asyncssh in the venv. Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from ecocloud_ops.adapters.ssh import (
    PLATFORM_COMMANDS,
    CommandResult,
    SshTarget,
    host_key_fingerprint,
    mask_secrets,
    run_commands,
)
from ecocloud_ops.lab.fake_cli import FakeCliServer
from ecocloud_ops.lab.netlab import LabSite, NetLab

pytestmark = pytest.mark.lab

_TOOLS = ("ip", "sshd", "ssh-keygen", "unshare")
_MISSING = [t for t in _TOOLS if shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
_MODULES = ("netmiko", "paramiko", "asyncssh")

NAME = "ecossh"  # unique: other labs (a demo, the poller's tests) may run at the same time
PASSWORD = "Lab-Passw0rd-2026"
TIMEOUT = 5.0
SLACK = 0.75  # seconds of scheduling slack on top of a budget (2 cores, other suites running)
TREE = {
    "000000": None,
    "130000": "000000", "130100": "130000", "130200": "130000",
    "440000": "000000", "440100": "440000",
}
LINUX = PLATFORM_COMMANDS["linux"].all()
KEY_PASSPHRASE = "Key-Passphrase-2026"


def test_the_tools_are_installed() -> None:
    # a missing tool or module is a failure here, never a silent skip
    assert os.geteuid() == 0, "the network lab needs root"
    assert not _MISSING, f"missing tools: {_MISSING} (run scripts/setup.sh --test)"
    missing = [m for m in _MODULES if importlib.util.find_spec(m) is None]
    assert not missing, f"missing Python packages: {missing} (pip install netmiko asyncssh)"


# ------------------------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    NetLab.cleanup_stale(NAME)  # a crashed earlier run of this module
    netlab = NetLab([LabSite(code, parent) for code, parent in TREE.items()], name=NAME, network="auto", snmp=False,
                    ssh_password=PASSWORD)
    try:
        started = time.monotonic()
        netlab.start()
        print(f"\n[ssh] lab of {len(TREE)} sites up in {time.monotonic() - started:.2f}s")
        yield netlab
    finally:
        netlab.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Client key pairs made with ssh-keygen: ``plain`` (no pass phrase) and ``encrypted``."""
    tmp = tmp_path_factory.mktemp("ssh-keys")
    made = {}
    for name, phrase in (("plain", ""), ("encrypted", KEY_PASSPHRASE)):
        path = tmp / f"client_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", phrase, "-C", name, "-f", str(path)], check=True,
                       timeout=30)
        made[name] = path
    return made


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[dict[str, FakeCliServer]]:
    """A fake Huawei (accepts the plain key) and a fake H3C (accepts the encrypted key), each with a command log."""
    tmp = tmp_path_factory.mktemp("fake-cli")
    servers = {
        "huawei": FakeCliServer("huawei", password=PASSWORD, log_file=tmp / "huawei.log",
                                authorized_key_file=keys["plain"].with_suffix(".pub")),
        "hp_comware": FakeCliServer("hp_comware", password=PASSWORD, log_file=tmp / "hp_comware.log",
                                    authorized_key_file=keys["encrypted"].with_suffix(".pub")),
    }
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def auth_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every authentication request paramiko sends (password, public key, keyboard-interactive, none), any thread."""
    calls: list[str] = []
    lock = threading.Lock()

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
            with lock:
                calls.append(name)
            return original(self, *args, **kwargs)
        return wrapper

    for name in ("auth_password", "auth_publickey", "auth_interactive", "auth_interactive_dumb", "auth_none"):
        monkeypatch.setattr(paramiko.Transport, name, spy(name, getattr(paramiko.Transport, name)))
    return calls


def linux(lab: NetLab, code: str, *, password: str = PASSWORD, known_host_key: str | None = None) -> SshTarget:
    return SshTarget(lab.address(code), username=lab.ssh_user, password=password, platform="linux", name=code,
                     known_host_key=known_host_key)


def fake(server: FakeCliServer, *, password: str | None = PASSWORD, key_file: Path | None = None,
         known_host_key: str | None = None, name: str = "") -> SshTarget:
    return SshTarget(server.host, port=server.port, username=server.username, password=password,
                     key_file=str(key_file) if key_file else None, platform=server.platform,
                     name=name or server.hostname, known_host_key=known_host_key)


def one(target: SshTarget, commands: list[str], timeout: float = TIMEOUT) -> CommandResult:
    (result,) = run_commands([(target, commands)], timeout=timeout)
    return result


def sshd_log(lab: NetLab, code: str) -> Path:
    assert lab.workdir is not None
    path = lab.workdir / code / "sshd.log"  # where NetLab sends the site's sshd -e output
    assert path.is_file(), path
    return path


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def command_log(server: FakeCliServer) -> list[str]:
    assert server.log_file is not None
    return server.log_file.read_text().splitlines() if server.log_file.exists() else []


def logged_out(server: FakeCliServer) -> Callable[[], bool]:
    return lambda: command_log(server)[-1:] == ["quit"]


# ------------------------------------------------------------------------------------------------------------
# OpenSSH in the lab (linux)
# ------------------------------------------------------------------------------------------------------------


def test_checks_and_config_on_three_sites_at_once(lab: NetLab) -> None:
    codes = ["000000", "130000", "440000"]
    started = time.monotonic()
    results = run_commands([(linux(lab, code), LINUX) for code in codes], timeout=TIMEOUT, concurrency=3)
    wall = time.monotonic() - started
    print(f"\n[ssh] 3 linux sites, {len(LINUX)} commands each: {wall:.2f}s wall, "
          f"{', '.join(f'{r.elapsed_ms:.0f}' for r in results)} ms per device")
    assert [r.target.name for r in results] == codes
    for code, result in zip(codes, results, strict=True):
        assert result.ok, result.error
        assert result.error is None and result.error_kind is None
        assert list(result.outputs) == LINUX and all(result.outputs.values())
        assert f"site-{code}" in result.outputs["uname -a"]
        assert lab.uplink_ifname(code) in result.outputs["ip -brief link"]
        config = result.outputs[PLATFORM_COMMANDS["linux"].config]
        assert config.splitlines()[0] == f"site-{code}"
        assert f"inet {lab.address(code)}/32" in config
        assert mask_secrets(config) == config  # nothing secret in it
        assert result.host_key is not None and result.host_key.startswith("ssh-ed25519 ")
        assert host_key_fingerprint(result.host_key) == lab.host_key_fingerprint(code)
        assert result.elapsed_ms < TIMEOUT * 1000
    assert wall < sum(r.elapsed_ms for r in results) / 1000  # the three ran side by side


def test_wrong_password_is_an_auth_failure_quickly(lab: NetLab) -> None:
    log = sshd_log(lab, "130000")
    result = one(linux(lab, "130000", password="Wrong-Passw0rd"), LINUX)
    print(f"\n[ssh] wrong password: {result.elapsed_ms:.0f} ms")
    assert not result.ok
    assert result.error_kind == "auth_failure"
    assert result.error is not None and result.error.startswith(f"{lab.address('130000')}:22 (130000): ")
    assert "Wrong-Passw0rd" not in result.error
    assert result.outputs == {}
    assert result.elapsed_ms < 3000
    assert wait_for(lambda: "Failed password for ecolab" in log.read_text(errors="replace"))


def test_stopped_sshd_is_a_result_within_budget_and_the_others_still_answer(lab: NetLab) -> None:
    lab.stop_ssh("440100")
    try:
        budget = 3.0
        started = time.monotonic()
        results = run_commands([(linux(lab, "440000"), ["uname -n"]), (linux(lab, "440100"), ["uname -n"]),
                                (linux(lab, "000000"), ["uname -n"])], timeout=budget, concurrency=2)
        wall = time.monotonic() - started
    finally:
        lab.start_ssh("440100")
    stopped = results[1]
    print(f"\n[ssh] stopped sshd: {stopped.error_kind} after {stopped.elapsed_ms:.0f} ms")
    assert [r.target.name for r in results] == ["440000", "440100", "000000"]
    assert results[0].ok and results[0].outputs["uname -n"] == "site-440000"
    assert results[2].ok and results[2].outputs["uname -n"] == "site-000000"
    assert not stopped.ok and stopped.error_kind in ("unreachable", "timeout"), stopped.error
    assert stopped.error_kind == "unreachable"  # the site's kernel answers with a RST: refused at once
    assert "refused" in (stopped.error or "")
    assert stopped.host_key is None and stopped.outputs == {}
    assert stopped.elapsed_ms < budget * 1000
    assert wall < budget + SLACK


def test_cut_link_is_a_timeout_or_unreachable_within_budget(lab: NetLab) -> None:
    budget = 2.0
    lab.cut("130200")
    try:
        started = time.monotonic()
        result = one(linux(lab, "130200"), LINUX, timeout=budget)
        wall = time.monotonic() - started
    finally:
        lab.restore("130200")
    print(f"\n[ssh] cut link: {result.error_kind} after {result.elapsed_ms:.0f} ms ({result.error})")
    assert not result.ok
    assert result.error_kind in ("timeout", "unreachable"), result.error
    assert result.elapsed_ms <= budget * 1000 + 100
    assert wall < budget + SLACK
    assert one(linux(lab, "130200"), ["uname -n"]).ok  # and back after restore()


def test_pinned_host_key_is_checked_before_the_password_is_sent(lab: NetLab, auth_calls: list[str]) -> None:
    code = "130100"
    first = one(linux(lab, code), ["uname -n"])  # first contact: trust on first use
    assert first.ok and first.host_key is not None
    pinned = first.host_key
    old_fp = lab.host_key_fingerprint(code)
    assert host_key_fingerprint(pinned) == old_fp

    auth_calls.clear()
    again = one(linux(lab, code, known_host_key=pinned), ["uname -n"])
    assert again.ok and again.host_key == pinned
    assert auth_calls == ["auth_password"]  # the spy sees a real login

    lab.rotate_host_key(code)
    new_fp = lab.host_key_fingerprint(code)
    assert new_fp != old_fp
    log = sshd_log(lab, code)
    before = log.stat().st_size
    auth_calls.clear()
    started = time.monotonic()
    changed = one(linux(lab, code, known_host_key=pinned), LINUX)  # the right password, the old key
    print(f"\n[ssh] host key changed: detected in {(time.monotonic() - started) * 1000:.0f} ms: {changed.error}")
    assert not changed.ok
    assert changed.error_kind == "host_key_changed"
    assert changed.error is not None and old_fp in changed.error and new_fp in changed.error
    assert changed.host_key is None and changed.outputs == {}
    # no credential left this process: paramiko sent no authentication request at all ...
    assert auth_calls == []

    # ... and sshd saw the connection end before authentication (at INFO it logs every password tried)
    def new_log() -> str:
        return log.read_bytes()[before:].decode(errors="replace")

    assert wait_for(lambda: "[preauth]" in new_log()), new_log()
    assert re.search(r"Connection (?:closed|reset) by [0-9.]+ port \d+ \[preauth\]", new_log()), new_log()
    for attempt in ("Accepted password", "Failed password", "authenticating user", "Invalid user"):
        assert attempt not in new_log(), new_log()

    # accepting the new key is a deliberate new first contact
    fresh = one(linux(lab, code), ["uname -n"])
    assert fresh.ok and fresh.host_key is not None and host_key_fingerprint(fresh.host_key) == new_fp


def test_no_ssh_banner_is_a_timeout_within_budget() -> None:
    # a loopback listener that completes the TCP handshake (backlog) but never speaks SSH
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        budget = 1.5
        target = SshTarget("127.0.0.1", port=listener.getsockname()[1], username="u", password="p", platform="linux")
        started = time.monotonic()
        result = one(target, ["uname -a"], timeout=budget)
        wall = time.monotonic() - started
    print(f"\n[ssh] silent server: {result.error_kind} after {result.elapsed_ms:.0f} ms ({result.error})")
    assert result.error_kind == "timeout", result.error
    assert result.elapsed_ms < (budget + 0.5) * 1000
    assert wall < budget + SLACK


# ------------------------------------------------------------------------------------------------------------
# The fake Huawei VRP / H3C Comware CLIs (loopback)
# ------------------------------------------------------------------------------------------------------------


def test_fake_huawei_and_comware_answer_the_display_commands(fakes: dict[str, FakeCliServer]) -> None:
    huawei, comware = fakes["huawei"], fakes["hp_comware"]
    started = time.monotonic()
    results = run_commands([(fake(huawei), PLATFORM_COMMANDS["huawei"].all()),
                            (fake(comware), PLATFORM_COMMANDS["hp_comware"].all())], timeout=TIMEOUT)
    print(f"\n[ssh] fake huawei + comware, 3 commands each: {time.monotonic() - started:.2f}s wall, "
          f"{', '.join(f'{r.elapsed_ms:.0f}' for r in results)} ms per device")
    hw, h3c = results
    assert hw.ok, hw.error
    assert h3c.ok, h3c.error
    assert hw.host_key == huawei.host_key and h3c.host_key == comware.host_key

    assert hw.outputs["display version"].startswith("Huawei Versatile Routing Platform Software")
    assert "GigabitEthernet0/0/1        up    up" in hw.outputs["display interface brief"]
    hw_config = hw.outputs["display current-configuration"]
    assert hw_config.startswith("!Software Version V200R011C10SPC600") and hw_config.endswith("return")
    assert "<HB-130000>" not in hw_config and "display current-configuration" not in hw_config  # prompt/echo gone
    assert " snmp-agent community read cipher %^%#" in hw_config
    assert " local-user admin password irreversible-cipher $1c$" in hw_config
    hw_masked = mask_secrets(hw_config)
    assert "%^%#" not in hw_masked and "$1c$" not in hw_masked and "$1a$" not in hw_masked
    assert " snmp-agent community read cipher ******\n" in hw_masked
    assert " local-user admin password irreversible-cipher ******\n" in hw_masked

    assert h3c.outputs["display version"].startswith("H3C Comware Software, Version 7.1.070")
    assert "XGE1/0/25            UP   10G" in h3c.outputs["display interface brief"]
    h3c_config = h3c.outputs["display current-configuration"]
    assert " sysname H3C" in h3c_config and "<H3C>" not in h3c_config
    assert " snmp-agent community read cipher $c$3$" in h3c_config and " password hash $h$6$" in h3c_config
    h3c_masked = mask_secrets(h3c_config)
    assert "$c$3$" not in h3c_masked and "$h$6$" not in h3c_masked and "Auth-Key-2026" not in h3c_masked
    assert " snmp-agent community read cipher ******\n" in h3c_masked

    # netmiko's session preparation sent each platform's paging switch first, and logged out at the end
    for server, paging in ((huawei, "screen-length 0 temporary"), (comware, "screen-length disable")):
        assert wait_for(logged_out(server)), command_log(server)
        session = command_log(server)
        session = session[max(i for i, line in enumerate(session) if line.startswith("# password login")):]
        assert session == ["# password login admin: accepted", paging, *PLATFORM_COMMANDS[server.platform].all(),
                           "quit"]


def test_fake_device_with_a_pinned_key_and_with_a_changed_key(fakes: dict[str, FakeCliServer],
                                                               auth_calls: list[str]) -> None:
    huawei, comware = fakes["huawei"], fakes["hp_comware"]
    pinned = one(fake(huawei, known_host_key=huawei.host_key), ["display version"])
    assert pinned.ok and pinned.host_key == huawei.host_key
    assert auth_calls == ["auth_password"]

    logins = sum(line.startswith("# ") for line in command_log(huawei))
    auth_calls.clear()
    changed = one(fake(huawei, known_host_key=comware.host_key), ["display version"])  # someone else's key
    assert changed.error_kind == "host_key_changed"
    assert changed.error is not None
    assert host_key_fingerprint(comware.host_key) in changed.error
    assert host_key_fingerprint(huawei.host_key) in changed.error
    assert auth_calls == []
    time.sleep(0.2)
    assert sum(line.startswith("# ") for line in command_log(huawei)) == logins  # the server saw no login attempt


def test_fake_device_rejecting_a_command_is_an_error_with_the_outputs_so_far(fakes: dict[str, FakeCliServer]) -> None:
    result = one(fake(fakes["huawei"]), ["display version", "display bogus-table", "display interface brief"])
    assert not result.ok
    assert result.error_kind == "error"
    assert result.error is not None and "'display bogus-table' rejected by the device" in result.error
    assert "Error: Unrecognized command found at '^' position." in result.error
    assert list(result.outputs) == ["display version", "display bogus-table"]
    assert result.host_key == fakes["huawei"].host_key


def test_fake_devices_with_key_files(fakes: dict[str, FakeCliServer], keys: dict[str, Path]) -> None:
    huawei, comware = fakes["huawei"], fakes["hp_comware"]
    results = run_commands([
        (fake(huawei, password=None, key_file=keys["plain"]), ["display version"]),
        (fake(comware, password=KEY_PASSPHRASE, key_file=keys["encrypted"]), ["display version"]),
        (fake(huawei, password=None, key_file=keys["encrypted"]), ["display version"]),  # no pass phrase
        (fake(comware, password=None, key_file=keys["plain"]), ["display version"]),  # not authorized there
        (fake(huawei, password=None, key_file=keys["plain"].with_name("missing")), ["display version"]),
    ], timeout=TIMEOUT)
    assert results[0].ok, results[0].error
    assert results[1].ok, results[1].error
    assert results[1].outputs["display version"].startswith("H3C Comware Software")
    assert results[2].error_kind == "error" and "encrypted" in (results[2].error or "")
    assert results[3].error_kind == "auth_failure", results[3].error
    assert results[4].error_kind == "error" and "cannot load key file" in (results[4].error or "")
    assert KEY_PASSPHRASE not in " ".join(r.error or "" for r in results)


def test_many_devices_run_with_bounded_concurrency_in_order(fakes: dict[str, FakeCliServer]) -> None:
    servers = [fakes["huawei"], fakes["hp_comware"]] * 6
    active = 0
    peak = 0
    lock = threading.Lock()
    original = paramiko.Transport.start_client

    def counting(self: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)  # widen the window so that overlapping sessions overlap here too
            return original(self, *args, **kwargs)
        finally:
            with lock:
                active -= 1

    targets = [(fake(s, name=f"dev-{i:02d}"), ["display version"]) for i, s in enumerate(servers)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paramiko.Transport, "start_client", counting)
        started = time.monotonic()
        results = run_commands(targets, timeout=TIMEOUT, concurrency=4)
        wall = time.monotonic() - started
    print(f"\n[ssh] 12 fake devices, concurrency 4: {wall:.2f}s wall, peak {peak} handshakes at once")
    assert [r.target.name for r in results] == [f"dev-{i:02d}" for i in range(12)]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    for server, result in zip(servers, results, strict=True):
        expected = "Huawei Versatile" if server.platform == "huawei" else "H3C Comware"
        assert result.outputs["display version"].startswith(expected)
    assert 1 < peak <= 4
