"""Contract tests of :mod:`ecocloud_ops.adapters.snmp`, run against BOTH clients and a REAL net-snmp ``snmpd``.

Every test is parametrized over ``gufo`` and ``pysnmp``. The agent is a foreground ``snmpd`` child bound to
``udp:127.0.0.1:<free port>`` with its own config, PID file and ``SNMP_PERSISTENT_DIR`` in a temporary folder
(see ``snmpd_peer.py``); it is killed and reaped at the end. Nothing leaves loopback.

Where the libraries legitimately differ, the expected behaviour is written down here (``DEAD_PORT_KIND``,
``GARBAGE_KINDS``) and asserted per library:

* nothing listening on the port: gufo's connected socket sees the ICMP port unreachable → ``unreachable``
  at once; pysnmp's shared unconnected socket cannot → ``timeout``;
* an agent answering random bytes: gufo mostly fails to decode (``SnmpDecodeError`` or a Rust panic) →
  ``malformed``, but ignores some garbage and keeps waiting → ``timeout`` (~1 in 4 random answers);
  pysnmp drops the datagram inside its engine → ``malformed`` when its decoder raised (our guard saw it),
  ``timeout`` when pysnmp dropped it quietly as a parse error. Both: a result, never an exception, and
  with ten garbage answers at least one is reported as ``malformed``.

Run standalone: ``.venv/bin/pytest -q tests/contract -p no:cacheprovider``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar, cast

import pytest

from ecocloud_ops.adapters.snmp import (
    ERROR_KINDS,
    SnmpClient,
    SnmpCredentials,
    SnmpResult,
    SnmpTarget,
    make_client,
)
from ecocloud_ops.errors import AuthFailed, Timeout

from .snmpd_peer import (
    AGENT_SYS_NAME,
    COMMUNITY,
    IF_DESCR,
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_NAME,
    IF_OPER_STATUS,
    SHA256_AES256,
    SHA_AES128,
    SYS_NAME,
    SYS_UPTIME,
    SnmpdPeer,
    V3User,
    free_udp_port,
    snmpd_path,
)

pytestmark = pytest.mark.lab


def test_snmpd_is_installed() -> None:
    assert snmpd_path() is not None, "net-snmp snmpd is missing (scripts/setup.sh --test installs it)"

T = TypeVar("T")

POLL_OIDS = [SYS_UPTIME, SYS_NAME, f"{IF_OPER_STATUS}.1", f"{IF_HC_IN_OCTETS}.1", f"{IF_HC_OUT_OCTETS}.1"]
MISSING_OID = "1.3.6.1.2.1.1.99.0"  # SNMPv2-MIB::system.99 does not exist
DEAD_PORT_KIND = {"gufo": "unreachable", "pysnmp": "timeout"}
GARBAGE_KINDS = {"gufo": {"malformed", "timeout"}, "pysnmp": {"malformed", "timeout"}}
V2C = SnmpCredentials("2c", community=COMMUNITY)


def v3(user: V3User) -> SnmpCredentials:
    return SnmpCredentials(
        "3", user=user.name,
        auth_protocol="SHA256" if user.auth == "SHA-256" else "SHA", auth_key=user.auth_key,
        priv_protocol="AES256" if user.priv == "AES256" else "AES", priv_key=user.priv_key,
    )


SHA_CREDS = v3(SHA_AES128)
SHA256_CREDS = v3(SHA256_AES256)


# ---------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdPeer]:
    """One real snmpd for the module: v2c community + two v3 authPriv users, on 127.0.0.1:<free port>."""
    peer = SnmpdPeer(tmp_path_factory.mktemp("snmpd"), [("127.0.0.1", free_udp_port())])
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(params=["gufo", "pysnmp"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def with_client(kind: str, body: Callable[[SnmpClient], Awaitable[T]]) -> T:
    """Run ``body(client)`` in a fresh event loop with a fresh client, closed inside that loop."""

    async def main() -> T:
        client = make_client("gufo" if kind == "gufo" else "pysnmp")
        try:
            return await body(client)
        finally:
            client.close()
            await asyncio.sleep(0)  # let closed transports finish before the loop goes away

    return asyncio.run(main())


def target(agent: SnmpdPeer, creds: SnmpCredentials = V2C, name: str = "lab-agent", **kw: Any) -> SnmpTarget:
    return SnmpTarget(kw.pop("host", agent.host), port=kw.pop("port", agent.port), credentials=creds, name=name)


def assert_is_result(result: object) -> None:
    assert isinstance(result, SnmpResult)
    assert result.error_kind is None or result.error_kind in ERROR_KINDS
    assert result.elapsed_ms >= 0
    if not result.ok:
        assert result.error and result.error_kind


class _GarbageAgent(asyncio.DatagramProtocol):
    """Answers every datagram with 1-200 random bytes (seeded: the same garbage every run)."""

    def __init__(self) -> None:
        self.rng = random.Random(20261128)
        self.transport: asyncio.DatagramTransport | None = None
        self.seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (CPython's selector datagram transport does not subclass asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.seen += 1
        assert self.transport is not None
        self.transport.sendto(self.rng.randbytes(self.rng.randint(1, 200)), addr)


# ---------------------------------------------------------------------------------------------------------------
# GET
# ---------------------------------------------------------------------------------------------------------------


def test_v2c_get_poll_oids_and_types(agent: SnmpdPeer, kind: str) -> None:
    results = with_client(kind, lambda c: c.get_many([(target(agent), POLL_OIDS)], timeout=2, retries=1,
                                                     concurrency=8))
    assert len(results) == 1
    r = results[0]
    assert_is_result(r)
    assert r.ok and r.error is None and r.error_kind is None, r.error
    assert list(r.values) == POLL_OIDS
    uptime, name, oper, hc_in, hc_out = (r.values[o] for o in POLL_OIDS)
    assert isinstance(uptime, int) and uptime >= 0  # TimeTicks
    assert name == AGENT_SYS_NAME and isinstance(name, str)  # OctetString, valid UTF-8
    assert isinstance(oper, int) and 1 <= oper <= 7  # ifOperStatus.1 (lo): INTEGER up(1)..lowerLayerDown(7)
    assert isinstance(hc_in, int) and hc_in >= 0  # Counter64
    assert isinstance(hc_out, int) and hc_out >= 0
    assert r.target.name == "lab-agent"


@pytest.mark.parametrize("user", [SHA_AES128, SHA256_AES256], ids=["sha-aes128", "sha256-aes256"])
def test_v3_auth_priv_get(agent: SnmpdPeer, kind: str, user: V3User) -> None:
    results = with_client(kind, lambda c: c.get_many([(target(agent, v3(user)), POLL_OIDS)], timeout=2, retries=1,
                                                     concurrency=8))
    r = results[0]
    assert_is_result(r)
    assert r.ok and r.error_kind is None, r.error
    assert r.values[SYS_NAME] == AGENT_SYS_NAME
    assert isinstance(r.values[SYS_UPTIME], int)
    assert isinstance(r.values[f"{IF_HC_IN_OCTETS}.1"], int)


def test_wrong_community_times_out_within_budget(agent: SnmpdPeer, kind: str) -> None:
    timeout, retries = 0.5, 1
    budget = timeout * (retries + 1)

    async def body(client: SnmpClient) -> tuple[SnmpResult, float]:
        warm = await client.get_many([(target(agent), [SYS_UPTIME])], timeout=2, retries=0, concurrency=1)
        assert warm[0].ok, warm[0].error  # engine set-up is not part of the budget below
        started = time.monotonic()
        bad = target(agent, replace(V2C, community="not-the-community"), name="bad-community")
        results = await client.get_many([(bad, POLL_OIDS)], timeout=timeout, retries=retries, concurrency=1)
        return results[0], time.monotonic() - started

    r, wall = with_client(kind, body)
    assert_is_result(r)
    assert not r.ok and r.error_kind == "timeout"
    assert r.error is not None
    assert "no answer (timeout; wrong community or agent down)" in r.error
    assert f"{agent.host}:{agent.port}" in r.error and "bad-community" in r.error
    assert all(v is None for v in r.values.values())
    assert budget * 0.9 <= wall <= budget + 0.6, wall


def test_wrong_v3_auth_key_is_auth_failure(agent: SnmpdPeer, kind: str) -> None:
    creds = replace(SHA256_CREDS, auth_key="definitely-wrong-auth-key")
    r = with_client(kind, lambda c: c.get_many([(target(agent, creds), POLL_OIDS)], timeout=1, retries=0,
                                               concurrency=1))[0]
    assert_is_result(r)
    assert not r.ok and r.error_kind == "auth_failure", r.error
    assert r.error is not None and str(agent.port) in r.error


def test_unknown_v3_user_is_auth_failure(agent: SnmpdPeer, kind: str) -> None:
    creds = replace(SHA_CREDS, user="nobody-here")
    r = with_client(kind, lambda c: c.get_many([(target(agent, creds), POLL_OIDS)], timeout=1, retries=0,
                                               concurrency=1))[0]
    assert_is_result(r)
    assert not r.ok and r.error_kind == "auth_failure", r.error


def test_nonexistent_oid_is_none_and_no_such_object(agent: SnmpdPeer, kind: str) -> None:
    oids = [SYS_UPTIME, MISSING_OID, SYS_NAME]
    both = with_client(kind, lambda c: c.get_many(
        [(target(agent), oids), (target(agent, SHA_CREDS), [MISSING_OID])], timeout=2, retries=0, concurrency=2))
    r, only_missing = both
    assert_is_result(r)
    # documented choice: the agent answered and sysUpTime has a value → ok, with the missing OID listed
    assert r.ok and r.error_kind == "no_such_object"
    assert r.values[MISSING_OID] is None and r.error is not None and MISSING_OID in r.error
    assert isinstance(r.values[SYS_UPTIME], int) and r.values[SYS_NAME] == AGENT_SYS_NAME
    assert list(r.values) == oids
    # nothing answered at all → not ok
    assert not only_missing.ok and only_missing.error_kind == "no_such_object"
    assert only_missing.values == {MISSING_OID: None}


def test_nothing_listening_is_a_result(agent: SnmpdPeer, kind: str) -> None:
    dead = target(agent, port=free_udp_port(), name="no-agent")
    started = time.monotonic()
    r = with_client(kind, lambda c: c.get_many([(dead, POLL_OIDS)], timeout=0.5, retries=0, concurrency=1))[0]
    assert time.monotonic() - started < 3.0
    assert_is_result(r)
    assert not r.ok and r.error_kind == DEAD_PORT_KIND[kind], r.error
    assert r.error is not None and "no-agent" in r.error


def test_garbage_agent_is_a_result(agent: SnmpdPeer, kind: str) -> None:
    async def body(client: SnmpClient) -> tuple[list[SnmpResult], int]:
        loop = asyncio.get_running_loop()
        port = free_udp_port()
        transport, proto = await loop.create_datagram_endpoint(_GarbageAgent, local_addr=("127.0.0.1", port))
        try:
            requests = [(target(agent, creds, f"garbage-{i}", port=port), POLL_OIDS)
                        for i, creds in enumerate([V2C, SHA_CREDS, SHA256_CREDS] * 3 + [V2C])]
            results = await client.get_many(requests, timeout=0.5, retries=0, concurrency=10)
            return results, proto.seen
        finally:
            transport.close()

    results, seen = with_client(kind, body)
    assert seen >= 10  # every request reached the garbage agent
    assert [r.target.name for r in results] == [f"garbage-{i}" for i in range(10)]
    for r in results:
        assert_is_result(r)
        assert not r.ok and r.error_kind in GARBAGE_KINDS[kind], (r.error_kind, r.error)
    assert any(r.error_kind == "malformed" for r in results)


def test_agent_killed_mid_cycle_every_request_gets_a_result(
        tmp_path_factory: pytest.TempPathFactory, kind: str) -> None:
    """snmpd is SIGKILLed exactly when request #``trigger`` goes out (a trigger port kills it on first packet)."""
    doomed = SnmpdPeer(tmp_path_factory.mktemp("doomed"), [("127.0.0.1", free_udp_port())])
    doomed.start()
    n, trigger, concurrency = 300, 100, 16

    class KillOnFirstPacket(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            doomed.kill()  # SIGKILL + reap; no answer is sent

    async def body(client: SnmpClient) -> list[SnmpResult]:
        loop = asyncio.get_running_loop()
        trigger_port = free_udp_port()
        transport, _ = await loop.create_datagram_endpoint(KillOnFirstPacket, local_addr=("127.0.0.1", trigger_port))
        try:
            requests = [(target(doomed, name=f"req-{i}"), POLL_OIDS) for i in range(n)]
            requests[trigger] = (target(doomed, name="trigger", port=trigger_port), POLL_OIDS)
            return await client.get_many(requests, timeout=0.3, retries=0, concurrency=concurrency)
        finally:
            transport.close()

    try:
        started = time.monotonic()
        results = with_client(kind, body)
        wall = time.monotonic() - started
    finally:
        doomed.stop()
    assert doomed.proc is None
    assert len(results) == n
    for i, r in enumerate(results):
        assert_is_result(r)
        assert r.target.name == ("trigger" if i == trigger else f"req-{i}")
    # when the trigger goes out, at least trigger - concurrency of the earlier requests have finished
    assert sum(r.ok for r in results[:trigger]) >= trigger - concurrency
    # requests sent after the kill fail, as results; a few sent in the same loop turn as the kill may still win
    after = results[trigger + 2 * concurrency:]
    odd = [(i, r.ok, r.error_kind, r.error) for i, r in enumerate(after, trigger + 2 * concurrency)
           if r.ok or r.error_kind not in {"timeout", "unreachable"}]
    assert after and not odd, odd[:5]
    assert results[trigger].error_kind == "timeout"
    assert wall < 15, wall


def test_get_many_200_requests_in_order(agent: SnmpdPeer, kind: str) -> None:
    choices = [[SYS_UPTIME], [SYS_NAME], [SYS_UPTIME, f"{IF_OPER_STATUS}.1"], POLL_OIDS]
    requests = [(target(agent, V2C if i % 3 else SHA_CREDS, f"dev-{i:03d}"), choices[i % len(choices)])
                for i in range(200)]
    results = with_client(kind, lambda c: c.get_many(requests, timeout=2, retries=1, concurrency=32))
    assert len(results) == 200
    for (req_target, oids), r in zip(requests, results, strict=True):
        assert_is_result(r)
        assert r.target is req_target
        assert r.ok and r.error_kind is None, r.error
        assert list(r.values) == oids
    assert results[1].values[SYS_NAME] == AGENT_SYS_NAME


def test_mixed_batch_one_bad_target_never_raises(agent: SnmpdPeer, kind: str) -> None:
    requests = [
        (target(agent, name="good-v2c"), [SYS_UPTIME]),
        (target(agent, replace(V2C, community="wrong"), "bad-community"), [SYS_UPTIME]),
        (target(agent, replace(SHA_CREDS, user="nobody-here"), "bad-user"), [SYS_UPTIME]),
        (target(agent, name="bad-oid"), ["not.an.oid"]),
        (target(agent, port=free_udp_port(), name="no-agent"), [SYS_UPTIME]),
        (target(agent, SHA256_CREDS, "good-v3"), [SYS_UPTIME]),
    ]
    results = with_client(kind, lambda c: c.get_many(requests, timeout=0.5, retries=0, concurrency=8))
    assert [r.target.name for r in results] == [t.name for t, _ in requests]
    for r in results:
        assert_is_result(r)
    kinds = {r.target.name: r.error_kind for r in results}
    assert kinds == {"good-v2c": None, "bad-community": "timeout", "bad-user": "auth_failure", "bad-oid": "error",
                     "no-agent": DEAD_PORT_KIND[kind], "good-v3": None}


# ---------------------------------------------------------------------------------------------------------------
# WALK
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("creds", [V2C, SHA256_CREDS], ids=["v2c", "v3-sha256"])
def test_walk_if_mib_maps_names_to_ifindex(agent: SnmpdPeer, kind: str, creds: SnmpCredentials) -> None:
    async def body(client: SnmpClient) -> tuple[dict[str, Any], dict[str, Any]]:
        names = await client.walk(target(agent, creds), IF_NAME, timeout=2, retries=1)
        descrs = await client.walk(target(agent, creds), "." + IF_DESCR, timeout=2, retries=1)
        return names, descrs

    names, descrs = with_client(kind, body)
    for table, base in ((names, IF_NAME), (descrs, IF_DESCR)):
        assert table, base
        assert all(oid.startswith(base + ".") for oid in table)
        by_name = {value: int(oid.rsplit(".", 1)[1]) for oid, value in table.items()}
        assert by_name["lo"] == 1  # the loopback interface is ifIndex 1 on Linux
        assert all(isinstance(value, str) for value in table.values())


def test_walk_empty_subtree_and_errors(agent: SnmpdPeer, kind: str) -> None:
    async def body(client: SnmpClient) -> dict[str, Any]:
        empty = await client.walk(target(agent), "1.3.6.1.2.1.1.99", timeout=1, retries=0)
        with pytest.raises(Timeout) as timed_out:
            await client.walk(target(agent, replace(V2C, community="wrong"), "walk-bad-community"), IF_NAME,
                              timeout=0.3, retries=0)
        with pytest.raises(AuthFailed) as refused:
            await client.walk(target(agent, replace(SHA_CREDS, user="nobody-here"), "walk-bad-user"), IF_NAME,
                              timeout=1, retries=0)
        return {"empty": empty, "timeout": str(timed_out.value), "auth": str(refused.value)}

    out = with_client(kind, body)
    assert out["empty"] == {}
    assert f"{agent.host}:{agent.port}" in out["timeout"] and "walk-bad-community" in out["timeout"]
    assert "walk-bad-user" in out["auth"]
