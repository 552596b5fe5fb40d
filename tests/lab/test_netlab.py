"""The network-namespace lab (ecocloud_ops.lab.netlab), checked with the real tools from the host namespace.

Needs root and the Debian packages iproute2, snmpd, snmp, openssh-server, openssh-client, sshpass, iputils-ping.
Run with ``-s`` to see the start/stop timings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecocloud_ops.lab.netlab import LabSite, NetLab

_TOOLS = ("ip", "snmpd", "snmpget", "snmpbulkwalk", "sshd", "ssh", "ssh-keyscan", "ssh-keygen", "sshpass", "ping",
          "unshare")
_MISSING = [t for t in _TOOLS if shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
pytestmark = pytest.mark.lab


def test_the_lab_tools_are_installed() -> None:
    # scripts/test.sh installs them; a missing tool is a failure here, never a silent skip.
    assert os.geteuid() == 0, "the network lab needs root"
    assert not _MISSING, f"missing tools: {_MISSING} (run scripts/setup.sh --test)"

NAME = "ecot"  # never "eco": a demo lab may be running
# Each lab takes a free block of 198.18.0.0/15 ("auto"): other labs (a demo, another test run) may be up.
SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"
ENGINE_BOOTS_OID = "1.3.6.1.6.3.10.2.1.2.0"
IF_DESCR, IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8"
IF_NAME, IF_HC_IN, IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10"
SSH_OPTS = ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
            "-o", "NumberOfPasswordPrompts=1", "-o", "ControlMaster=no"]

TREE = {
    "000000": None,
    "130000": "000000", "130100": "130000", "130102": "130100", "130104": "130100",
    "130200": "130000", "130202": "130200", "130203": "130200",
    "440000": "000000", "440100": "440000", "440103": "440100", "440104": "440100",
    "440300": "440000", "440303": "440300", "440304": "440300",
}
TIMINGS: dict[str, float] = {}


def _sites(tree: dict[str, str | None]) -> list[LabSite]:
    return [LabSite(code, parent) for code, parent in tree.items()]


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    NetLab.cleanup_stale(NAME)  # a crashed earlier run of this module
    netlab = NetLab(_sites(TREE), name=NAME, network="auto")
    try:
        started = time.monotonic()
        netlab.start()
        TIMINGS["start15"] = time.monotonic() - started
        print(f"\n[netlab] 15 sites: start() took {TIMINGS['start15']:.2f}s")
        yield netlab
    finally:
        netlab.stop()


def ping_many(addresses: list[str]) -> dict[str, bool]:
    """Ping each address once (in parallel); True where it answered."""
    procs = {a: subprocess.Popen(["ping", "-n", "-c1", "-W1", a], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for a in addresses}
    return {a: p.wait(10) == 0 for a, p in procs.items()}


def snmp(lab: NetLab, code: str, *oids: str, args: list[str] | None = None, tool: str = "snmpget",
         timeout: int = 1) -> subprocess.CompletedProcess[str]:
    cmd = [tool, *(args if args is not None else lab.snmp_cli_args()), "-t", str(timeout), "-r", "0", "-On",
           lab.address(code), *oids]
    return subprocess.run(cmd, capture_output=True, text=True, env=lab.client_env(), timeout=30, check=False)


def snmp_value(lab: NetLab, code: str, oid: str, args: list[str] | None = None) -> str:
    result = snmp(lab, code, oid, args=args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(" = ", 1)[1].split(": ", 1)[1].strip().strip('"')


def walk(lab: NetLab, code: str, oid: str) -> dict[str, tuple[str, str]]:
    """ifIndex → (type, value) of a column."""
    result = snmp(lab, code, oid, tool="snmpbulkwalk")
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        name, _, rest = line.partition(" = ")
        kind, _, value = rest.partition(": ")
        rows[name.rsplit(".", 1)[1]] = (kind, value.strip('"'))
    return rows


def ssh_run(address: str, password: str, command: str, *opts: str) -> subprocess.CompletedProcess[str]:
    # ssh takes the first value given for an option: the caller's options go first
    return subprocess.run(["sshpass", "-p", password, "ssh", *opts, *SSH_OPTS, f"ecolab@{address}", command],
                          capture_output=True, text=True, timeout=30, check=False)


def test_ping_reaches_every_site(lab: NetLab) -> None:
    answers = ping_many([lab.address(c) for c in TREE])
    assert all(answers.values()), [a for a, ok in answers.items() if not ok]
    assert all(ipaddress.IPv4Address(lab.address(c)) in lab.network for c in TREE)


def test_snmp_v2c_sysname_of_every_site(lab: NetLab) -> None:
    for code in TREE:
        assert snmp_value(lab, code, SYS_NAME_OID) == f"site-{code}"


def test_snmp_v3_authpriv_sha_aes(lab: NetLab) -> None:
    args = lab.snmp_cli_args(v3=True)
    assert (args[args.index("-a") + 1], args[args.index("-x") + 1]) == ("SHA", "AES")
    for code in ("000000", "130104", "440304"):
        assert snmp_value(lab, code, SYS_NAME_OID, args=lab.snmp_cli_args(v3=True)) == f"site-{code}"
    wrong_key = lab.snmp_cli_args(v3=True)
    wrong_key[wrong_key.index("-A") + 1] = "not-the-key-1"
    assert snmp(lab, "130104", SYS_NAME_OID, args=wrong_key).returncode != 0


def test_wrong_community_times_out(lab: NetLab) -> None:
    result = snmp(lab, "130102", SYS_NAME_OID, args=["-v2c", "-c", "public"])
    assert result.returncode != 0
    assert "Timeout" in result.stderr


def test_if_mib_of_a_province(lab: NetLab) -> None:
    descr = walk(lab, "130000", IF_DESCR)
    names = {index: value for index, (_kind, value) in walk(lab, "130000", IF_NAME).items()}
    assert sorted(v for _k, v in descr.values()) == ["dn-130100", "dn-130200", "lo", "up-000000"]
    assert {v for _k, v in descr.values()} == set(names.values())
    uplink = next(i for i, name in names.items() if name == lab.uplink_ifname("130000"))
    assert walk(lab, "130000", IF_OPER_STATUS)[uplink] == ("INTEGER", "1")
    for column in (IF_HC_IN, IF_HC_OUT):
        kind, value = walk(lab, "130000", column)[uplink]
        assert kind == "Counter64" and int(value) > 0
    county_names = {v for _k, v in walk(lab, "130102", IF_NAME).values()}
    assert county_names == {"lo", lab.uplink_ifname("130102")} == {"lo", "up-130100"}


def test_cut_and_restore_a_city(lab: NetLab) -> None:
    cut_off = ["130100", "130102", "130104"]
    still_up = ["000000", "130000", "130200", "130202", "130203", "440000"]
    lab.cut("130100")
    try:
        answers = ping_many([lab.address(c) for c in cut_off + still_up])
        assert [c for c in cut_off if answers[lab.address(c)]] == []
        assert [c for c in still_up if not answers[lab.address(c)]] == []
        assert not lab.reachable("130104", timeout=0.5)
        # the parent's agent reports its link to the city down (net-snmp caches ifTable for ~3 s)
        names = {value: index for index, (_kind, value) in walk(lab, "130000", IF_NAME).items()}
        downlink = names[lab.downlink_ifname("130100")]
        deadline = time.monotonic() + 8
        while (status := walk(lab, "130000", IF_OPER_STATUS)[downlink]) == ("INTEGER", "1"):
            assert time.monotonic() < deadline, "ifOperStatus of the cut link stayed up(1)"
            time.sleep(0.25)
        assert status == ("INTEGER", "2")
    finally:
        lab.restore("130100")
    answers = ping_many([lab.address(c) for c in cut_off + still_up])
    assert all(answers.values()), [a for a, ok in answers.items() if not ok]
    assert snmp_value(lab, "130104", SYS_NAME_OID) == "site-130104"


def test_cut_and_restore_a_province_and_the_ministry(lab: NetLab) -> None:
    lab.cut("440000")
    try:
        answers = ping_many([lab.address(c) for c in ("440000", "440303", "130000")])
        assert answers == {lab.address("440000"): False, lab.address("440303"): False, lab.address("130000"): True}
    finally:
        lab.restore("440000")
    lab.cut("000000")
    try:
        assert not any(ping_many([lab.address(c) for c in ("000000", "130000")]).values())
    finally:
        lab.restore("000000")
    assert all(ping_many([lab.address(c) for c in TREE]).values())


def test_stop_agent_keeps_ping_but_snmp_times_out(lab: NetLab) -> None:
    boots = int(snmp_value(lab, "440100", ENGINE_BOOTS_OID, args=lab.snmp_cli_args(v3=True)))
    lab.stop_agent("440100")
    try:
        assert ping_many([lab.address("440100")]) == {lab.address("440100"): True}
        result = snmp(lab, "440100", SYS_NAME_OID)
        assert result.returncode != 0 and "Timeout" in result.stderr
    finally:
        lab.start_agent("440100")
    assert snmp_value(lab, "440100", SYS_NAME_OID) == "site-440100"
    # the agent kept its persistent state (engine ID, boots) in its own directory
    assert int(snmp_value(lab, "440100", ENGINE_BOOTS_OID, args=lab.snmp_cli_args(v3=True))) == boots + 1
    assert lab.workdir is not None and (lab.workdir / "440100" / "persist" / "snmpd.conf").exists()


def test_ssh_password_login(lab: NetLab) -> None:
    result = ssh_run(lab.address("130102"), "Lab-Passw0rd-2026", "uname -n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "site-130102"
    refused = ssh_run(lab.address("130102"), "wrong-password", "uname -n")
    assert refused.returncode != 0
    assert "site-130102" not in refused.stdout


def test_changed_host_key(lab: NetLab, tmp_path: Path) -> None:
    address = lab.address("440104")
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", address], capture_output=True, text=True, check=True)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(scan.stdout)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(known_hosts)], capture_output=True, text=True, check=True)
    old = lab.host_key_fingerprint("440104")
    assert old in listed.stdout
    strict = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    assert ssh_run(address, "Lab-Passw0rd-2026", "uname -n", *strict).returncode == 0

    lab.rotate_host_key("440104")
    assert lab.host_key_fingerprint("440104") != old
    changed = ssh_run(address, "Lab-Passw0rd-2026", "uname -n", *strict)
    assert changed.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in changed.stderr
    rescan = subprocess.run(["ssh-keyscan", "-t", "ed25519", address], capture_output=True, text=True, check=True)
    assert rescan.stdout.split()[-1] != scan.stdout.split()[-1]


def test_sha256_aes256_user() -> None:
    sites = _sites({"000000": None, "130000": "000000", "130100": "130000"})
    with NetLab(sites, name="ecov", network="auto", v3_auth="SHA256", v3_priv="AES256", ssh=False) as lab:
        args = lab.snmp_cli_args(v3=True)
        assert (args[args.index("-a") + 1], args[args.index("-x") + 1]) == ("SHA-256", "AES-256")
        for code in ("000000", "130100"):
            assert snmp_value(lab, code, SYS_NAME_OID, args=args) == f"site-{code}"
        sha1 = list(args)
        sha1[sha1.index("-a") + 1] = "SHA"
        assert snmp(lab, "130100", SYS_NAME_OID, args=sha1).returncode != 0
    assert not any(ns.startswith("ecov-") for ns in _netns())


def test_cleanup_stale_after_a_crash() -> None:
    sites = _sites({"000000": None, "110000": "000000"})
    crashed = NetLab(sites, name="ecoz", network="auto")
    crashed.start()
    pids = [p.pid for p in [*crashed._snmpd.values(), *crashed._sshd.values()]]
    # as if the process had died: nothing of `crashed` is used to clean up
    assert NetLab.cleanup_stale("ecoz") == 2
    assert not any(ns.startswith("ecoz-") for ns in _netns())
    assert not Path("/sys/class/net/ecoz-lab").exists()
    assert [pid for pid in pids if _state(pid) not in (None, "Z")] == []
    crashed.stop()  # must not raise on a lab that was removed behind its back
    assert [pid for pid in pids if _state(pid) is not None] == []  # and nothing is left as a zombie


class _BrokenAgentLab(NetLab):
    """A lab whose snmpd at one county exits at once (as with a bad config)."""

    spawned: list[int] = []

    def _start_snmpd(self, code: str) -> None:
        super()._start_snmpd(code)
        self.spawned.append(self._snmpd[code].pid)
        if code == "130102":
            self._snmpd[code].kill()

    def _start_sshd(self, code: str) -> None:
        super()._start_sshd(code)
        self.spawned.append(self._sshd[code].pid)


def test_failed_start_removes_what_it_built() -> None:
    broken = _BrokenAgentLab(_sites({"000000": None, "130000": "000000", "130100": "130000", "130102": "130100"}),
                             name="ecof", network="auto")
    with pytest.raises(RuntimeError, match=r"snmpd exited: 130102 \(198\.1[89]\."):
        broken.start()
    assert not any(ns.startswith("ecof-") for ns in _netns())
    assert not Path("/sys/class/net/ecof-lab").exists()
    assert len(broken.spawned) == 8
    assert [pid for pid in broken.spawned if _state(pid) is not None] == []  # killed and reaped
    assert not Path("/run/ecocloud-netlab/ecof.json").exists()


def test_a_100_site_tree() -> None:
    tree: dict[str, str | None] = {"000000": None}
    for province in ("130000", "140000", "150000"):
        tree[province] = "000000"
        for city in range(1, 5):
            city_code = f"{province[:2]}{city:02d}00"
            tree[city_code] = province
            for county in range(1, 8):
                tree[f"{province[:2]}{city:02d}{county:02d}"] = city_code
    assert len(tree) == 100
    big = NetLab(_sites(tree), name="ecoh", network="auto")
    try:
        started = time.monotonic()
        big.start()
        TIMINGS["start100"] = time.monotonic() - started
        assert all(ping_many([big.address(c) for c in ("000000", "130000", "140407", "150407")]).values())
        assert snmp_value(big, "150407", SYS_NAME_OID) == "site-150407"
    finally:
        stopping = time.monotonic()
        big.stop()
        TIMINGS["stop100"] = time.monotonic() - stopping
    print(f"\n[netlab] 100 sites (snmpd+sshd each): start() {TIMINGS['start100']:.2f}s, "
          f"stop() {TIMINGS['stop100']:.2f}s")
    assert not any(ns.startswith("ecoh-") for ns in _netns())


def test_stop_removes_everything(lab: NetLab) -> None:
    """Runs last in this module: stop the module's lab and look for anything left behind."""
    pids = [p.pid for p in [*lab._snmpd.values(), *lab._sshd.values()]]
    assert len(pids) == 2 * len(TREE)
    inner = [child for pid in pids for child in _children(pid)]  # the sshd under each unshare
    # Other labs of this session (the DR lab's sshd) are children too, and stay.
    others = set(_children(os.getpid(), names=("snmpd", "sshd", "unshare", "ip"))) - set(pids)
    workdir = lab.workdir
    assert workdir is not None and workdir.exists()
    stopping = time.monotonic()
    lab.stop()
    TIMINGS["stop15"] = time.monotonic() - stopping
    print(f"\n[netlab] 15 sites: start() {TIMINGS.get('start15', 0):.2f}s, stop() {TIMINGS['stop15']:.2f}s")
    assert not any(ns.startswith(f"{NAME}-") for ns in _netns())
    assert not Path(f"/sys/class/net/{NAME}-lab").exists()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    assert str(lab.network) not in routes
    assert [pid for pid in pids + inner if _state(pid) is not None] == []
    assert set(_children(os.getpid(), names=("snmpd", "sshd", "unshare", "ip"))) - others == set()
    assert not workdir.exists()
    lab.stop()  # idempotent


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _state(pid: int) -> str | None:
    """The process state letter (Z for a zombie), or None when no such process exists."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


def _children(pid: int, names: tuple[str, ...] = ()) -> list[int]:
    """Child processes of ``pid`` (any state, zombies included), optionally only those with these names."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.find("(") + 1:raw.rfind(")")]
        if int(raw[raw.rfind(")") + 2:].split()[1]) == pid and (not names or comm in names):
            found.append(int(entry.name))
    return found


def test_plan_rejects_bad_trees() -> None:
    with pytest.raises(ValueError, match="exactly one site"):
        NetLab([LabSite("000000", None), LabSite("110000", None)], name=NAME)
    with pytest.raises(ValueError, match="unknown parent"):
        NetLab([LabSite("000000", None), LabSite("110100", "110000")], name=NAME)
    with pytest.raises(ValueError, match="inside 198.18.0.0/15"):
        NetLab([LabSite("000000", None)], name=NAME, network="10.0.0.0/16")
    with pytest.raises(ValueError, match="lab name"):
        NetLab([LabSite("000000", None)], name="a-name-far-too-long")
    plan = NetLab(_sites(TREE), name=NAME, network="198.19.0.0/23")
    assert plan.subtree("130100") == ["130100", "130102", "130104"]
    assert plan.uplink_ifname("000000") == "up-host" and plan.uplink_ifname("440303") == "up-440300"
    assert all(len(plan.namespace(c)) and len(plan.uplink_ifname(c)) <= 15 for c in TREE)
    assert re.fullmatch(r"198\.19\.\d+\.\d+", plan.address("440304"))
