"""SNMP adapter: one interface (:class:`SnmpClient`), two implementations (gufo-snmp and pysnmp).

The poller probes thousands of devices per cycle with one GET each (sysUpTime.0, sysName.0 and the uplink's
ifOperStatus / ifHCInOctets / ifHCOutOctets by ifIndex), and walks IF-MIB to map interface names to ifIndex.

* :class:`GufoClient` (gufo-snmp, Rust core, asyncio) is the fast path and the default of :func:`make_client`.
* :class:`PysnmpClient` (pysnmp 7 asyncio ``hlapi.v3arch``) is the general adapter; it costs about 2 ms of
  CPU per response plus about 2 ms the first time it meets a target, so it does not meet a 2-second cycle
  over thousands of distinct devices on one core (see ``benchmarks/snmp_clients.py``).

Only this module's own frozen dataclasses cross the boundary; library objects and exceptions never do.

Result contract of :meth:`SnmpClient.get_many` (identical for both implementations):

* one :class:`SnmpResult` per request, in request order; a bad target is a result, never an exception;
* ``values`` has one key per requested OID (numeric, no leading dot) in request order; a value is ``int``
  (Integer, Counter32/64, Gauge32, TimeTicks, Unsigned32), ``str`` (an OctetString that is valid UTF-8 and
  printable; IpAddress as dotted quad; OBJECT IDENTIFIER as dotted OID) or ``bytes`` (any other OctetString),
  and ``None`` when the agent has no such object/instance (or end of MIB view), or when the request failed;
* ``error_kind`` is one of :data:`ERROR_KINDS`:

  - ``timeout``: no (usable) answer within ``timeout`` × (``retries`` + 1). With SNMPv2c a wrong community
    looks exactly like this (net-snmp drops the request silently), and so does an SNMPv3 wrong *privacy*
    key (net-snmp cannot decrypt and sends no report);
  - ``auth_failure``: SNMPv3 report of an unknown user name, a wrong digest (wrong auth key), a decryption
    error, an unsupported security level, or a not-in-time-window that did not resolve;
  - ``no_such_object``: the agent answered, but some OIDs have no value. **Choice:** ``ok`` stays ``True`` as
    long as at least one requested OID has a value (the poller always asks sysUpTime.0 first, which every
    agent has); ``error`` lists the missing OIDs. If *no* OID has a value, ``ok`` is ``False``;
  - ``malformed``: the answer could not be decoded (garbage, truncated, not SNMP). Some garbage is dropped
    silently inside a library and then ends as ``timeout`` (see the two classes);
  - ``unreachable``: an ICMP port/host unreachable came back (only detectable with a connected socket,
    i.e. :class:`GufoClient`; pysnmp's shared unconnected socket reports these as ``timeout``);
  - ``error``: anything else (agent error-status such as tooBig/genErr, unresolvable host name, invalid OID).

* ``ok`` is ``True`` with ``error_kind`` ``None`` when every OID has a value.

Every message names the device as ``host:port (name)``.
"""

from __future__ import annotations

import abc
import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, NoReturn, TypeAlias

from ecocloud_ops.errors import AdapterError, AuthFailed, EcoCloudError, Timeout, Unreachable, ValidationFailed

__all__ = [
    "ERROR_KINDS",
    "ErrorKind",
    "GufoClient",
    "PysnmpClient",
    "SnmpClient",
    "SnmpCredentials",
    "SnmpResult",
    "SnmpTarget",
    "SnmpValue",
    "make_client",
]

ErrorKind: TypeAlias = Literal["timeout", "auth_failure", "no_such_object", "malformed", "unreachable", "error"]
ERROR_KINDS: tuple[str, ...] = ("timeout", "auth_failure", "no_such_object", "malformed", "unreachable", "error")
SnmpValue: TypeAlias = int | str | bytes | None

_OID_RE = re.compile(r"^\d+(\.\d+)+$")
_V2C_TIMEOUT = "no answer (timeout; wrong community or agent down)"
_V3_TIMEOUT = "no answer (timeout; agent down or wrong SNMPv3 privacy key)"


# --------------------------------------------------------------------------------------------------------------
# Our own data classes
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnmpCredentials:
    """SNMP credentials. ``version="2c"`` needs ``community``; ``version="3"`` needs ``user`` and is authPriv
    when both key pairs are given, authNoPriv with auth only, noAuthNoPriv with neither.

    ``auth_protocol``: ``"SHA"`` (HMAC-SHA-96) or ``"SHA256"`` (HMAC-SHA-256-192);
    ``priv_protocol``: ``"AES"`` (AES-128-CFB) or ``"AES256"`` (AES-256-CFB). Keys are pass phrases.
    Secrets are left out of ``repr``.
    """

    version: Literal["2c", "3"]
    community: str | None = field(default=None, repr=False)
    user: str | None = None
    auth_protocol: Literal["SHA", "SHA256"] | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: Literal["AES", "AES256"] | None = None
    priv_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.version == "2c":
            if not self.community:
                raise ValidationFailed("SNMPv2c credentials need a community")
        elif self.version == "3":
            if not self.user:
                raise ValidationFailed("SNMPv3 credentials need a user name")
            if (self.auth_protocol is None) != (self.auth_key is None):
                raise ValidationFailed("SNMPv3 auth_protocol and auth_key go together")
            if (self.priv_protocol is None) != (self.priv_key is None):
                raise ValidationFailed("SNMPv3 priv_protocol and priv_key go together")
            if self.priv_protocol is not None and self.auth_protocol is None:
                raise ValidationFailed("SNMPv3 privacy needs authentication")
            for key in (self.auth_key, self.priv_key):
                if key is not None and len(key) < 8:
                    raise ValidationFailed("SNMPv3 pass phrases must have at least 8 characters")
        else:
            raise ValidationFailed(f"unsupported SNMP version {self.version!r}")


@dataclass(frozen=True)
class SnmpTarget:
    """One agent: ``SnmpTarget("10.1.2.3", credentials=creds, name="hb-sjz-core-1")``.

    ``host`` is an IPv4/IPv6 address (or a resolvable name); ``port``, ``credentials`` and ``name`` are
    keyword-only.
    """

    host: str
    _: KW_ONLY
    port: int = 161
    credentials: SnmpCredentials
    name: str = ""

    @property
    def label(self) -> str:
        """``host:port (name)``, as used in every message about this device."""
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"{addr} ({self.name})" if self.name else addr


@dataclass(frozen=True)
class SnmpResult:
    """Outcome of one GET (see the module docstring for the meaning of ``ok`` and ``error_kind``)."""

    target: SnmpTarget
    ok: bool
    values: dict[str, SnmpValue]
    error: str | None
    error_kind: ErrorKind | None
    elapsed_ms: float


# --------------------------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------------------------


class SnmpClient(abc.ABC):
    """What the platform asks of an SNMP library. Use one client per event loop; call :meth:`close` at the end."""

    kind: str = ""

    @abc.abstractmethod
    async def get_many(
        self,
        requests: list[tuple[SnmpTarget, list[str]]],
        *,
        timeout: float,
        retries: int,
        concurrency: int,
    ) -> list[SnmpResult]:
        """Send one SNMP GET per ``(target, oids)`` request, at most ``concurrency`` in flight.

        ``oids`` are numeric dotted strings (a leading dot is accepted). Each request may take up to
        ``timeout`` seconds per attempt and ``retries`` further attempts.

        Returns:
            One :class:`SnmpResult` per request, in the order of ``requests``. Values are ``int``, ``str``,
            ``bytes`` or ``None`` (missing object); failures are described by ``error`` / ``error_kind``.

        Raises:
            Nothing for a failing device: timeouts, authentication failures, garbage answers, invalid OIDs and
            so on are results. Only cancellation (``asyncio.CancelledError``) propagates, plus
            ecocloud_ops.errors.ValidationFailed for ``timeout <= 0``, ``retries < 0`` or ``concurrency < 1``
            and ecocloud_ops.errors.AdapterError when the client is already closed.
        """

    @abc.abstractmethod
    async def walk(self, target: SnmpTarget, oid: str, *, timeout: float, retries: int) -> dict[str, int | str | bytes]:
        """Walk the subtree under ``oid`` (GETBULK on v2c/v3), e.g. IF-MIB ifName to map names to ifIndex.

        Returns:
            ``{full numeric OID: value}`` in agent order, only OIDs inside the subtree; empty if there are none.

        Raises:
            ecocloud_ops.errors.Timeout: the agent did not answer a page within ``timeout`` × (``retries`` + 1).
            ecocloud_ops.errors.AuthFailed: SNMPv3 authentication was refused.
            ecocloud_ops.errors.Unreachable: ICMP unreachable came back (gufo only).
            ecocloud_ops.errors.AdapterError: anything else (garbage answer, agent error, bad OID or host,
                client closed).
            ecocloud_ops.errors.ValidationFailed: ``timeout <= 0`` or ``retries < 0``.
            Every message about a device names it (``host:port (name)``).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets and engines. Idempotent; the client must not be used afterwards."""


def make_client(kind: Literal["gufo", "pysnmp"] = "gufo") -> SnmpClient:
    """The SNMP client for ``kind``: ``"gufo"`` (fast, default) or ``"pysnmp"``."""
    if kind == "gufo":
        return GufoClient()
    if kind == "pysnmp":
        return PysnmpClient()
    raise ValidationFailed(f"unknown SNMP client kind {kind!r} (expected 'gufo' or 'pysnmp')")


# --------------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------------

_PASS_THROUGH = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


def _norm_oid(oid: str) -> str:
    oid = oid.strip()
    return oid[1:] if oid.startswith(".") else oid


def _octets(raw: bytes) -> str | bytes:
    """OctetString → ``str`` when it is valid UTF-8 and printable (tab/CR/LF allowed), else the raw ``bytes``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    if text.translate({9: None, 10: None, 13: None}).isprintable():
        return text
    return raw


def _timeout_message(target: SnmpTarget) -> str:
    return _V2C_TIMEOUT if target.credentials.version == "2c" else _V3_TIMEOUT


def _finish(target: SnmpTarget, oids: list[str], got: dict[str, SnmpValue], started: float) -> SnmpResult:
    """Build the result for an answered GET from ``got`` (missing OIDs → None, ``no_such_object``)."""
    values = {oid: got.get(oid) for oid in oids}
    missing = [oid for oid, value in values.items() if value is None]
    elapsed = (time.perf_counter() - started) * 1000.0
    if not missing:
        return SnmpResult(target, True, values, None, None, elapsed)
    message = f"{target.label}: no such object/instance: {', '.join(missing)}"
    return SnmpResult(target, len(missing) < len(oids), values, message, "no_such_object", elapsed)


def _failed(target: SnmpTarget, oids: list[str], kind: ErrorKind, message: str, started: float) -> SnmpResult:
    elapsed = (time.perf_counter() - started) * 1000.0
    return SnmpResult(target, False, dict.fromkeys(oids), f"{target.label}: {message}", kind, elapsed)


def _check_oids(oids: Iterable[str]) -> tuple[list[str], str | None]:
    normalized = [_norm_oid(o) for o in oids]
    if not normalized:
        return normalized, "no OIDs requested"
    bad = [o for o in normalized if not _OID_RE.match(o)]
    if bad:
        return normalized, f"invalid OID(s) (numeric dotted form expected): {', '.join(bad)}"
    return normalized, None


def _check_params(timeout: float, retries: int, concurrency: int = 1) -> None:
    if timeout <= 0 or retries < 0 or concurrency < 1:
        raise ValidationFailed("timeout must be > 0, retries >= 0 and concurrency >= 1")


def _raise_for(kind: ErrorKind, message: str, cause: BaseException | None = None) -> NoReturn:
    exc: EcoCloudError
    if kind == "timeout":
        exc = Timeout(message)
    elif kind == "auth_failure":
        exc = AuthFailed(message)
    elif kind == "unreachable":
        exc = Unreachable(message)
    else:
        exc = AdapterError(message)
    raise exc from cause


async def _bounded(
    requests: list[tuple[SnmpTarget, list[str]]],
    concurrency: int,
    one: Callable[[SnmpTarget, list[str]], Awaitable[SnmpResult]],
) -> list[SnmpResult]:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(target: SnmpTarget, oids: list[str]) -> SnmpResult:
        async with semaphore:
            return await one(target, oids)

    return list(await asyncio.gather(*(run(t, o) for t, o in requests)))


# --------------------------------------------------------------------------------------------------------------
# gufo-snmp
# --------------------------------------------------------------------------------------------------------------


class GufoClient(SnmpClient):
    """gufo-snmp (``gufo.snmp.aio.SnmpSession``): one connected UDP socket per request, Rust BER/USM.

    Library behaviour translated here (gufo-snmp 0.13):

    * ``get_many`` leaves OIDs the agent reports as noSuchObject/noSuchInstance out of its dict → ``None``;
    * a timeout raises ``TimeoutError``; an ICMP port unreachable on the connected socket raises a
      ``TimeoutError`` at once, caused by ``TimeoutError("connection refused")`` → ``unreachable``;
    * SNMPv3 unknown user / wrong digest → ``SnmpAuthError`` → ``auth_failure`` (the engine-ID discovery itself
      succeeds; the GET is refused);
    * undecodable answers raise ``SnmpDecodeError``, and some garbage makes the Rust decoder *panic*
      (``pyo3_runtime.PanicException``, a ``BaseException``; the panic hook also prints to stderr) → both
      ``malformed``, no retry. Some garbage gufo ignores and keeps waiting for a matching answer → ``timeout``;
    * gufo has no retries of its own: each attempt (v3: discovery + GET) runs under ``asyncio.timeout``.
    """

    kind = "gufo"

    def __init__(self, *, max_repetitions: int = 25) -> None:
        self._max_repetitions = max_repetitions
        self._users: dict[SnmpCredentials, Any] = {}
        self._closed = False

    async def _session(self, target: SnmpTarget, timeout: float) -> Any:
        from gufo.snmp.aio import SnmpSession

        host = await _resolve(target.host)
        creds = target.credentials
        common: dict[str, Any] = {"timeout": timeout, "max_repetitions": self._max_repetitions}
        if creds.version == "2c":
            return SnmpSession(host, target.port, community=creds.community or "", **common)
        return SnmpSession(host, target.port, user=self._user(creds), **common)

    def _user(self, creds: SnmpCredentials) -> Any:
        """gufo ``User`` with *master* keys, cached per credential set.

        Given pass phrases, gufo runs the RFC 3414 password-to-key hashing (1 MB of SHA) for every session:
        ~2.9 ms per SNMPv3 GET instead of ~0.3 ms. The privacy master key is hashed with the *auth* algorithm
        (RFC 3414 / 3826); gufo localizes both keys with the agent's engine ID after discovery.
        """
        user = self._users.get(creds)
        if user is not None:
            return user
        from gufo.snmp import Aes128Key, Aes256Key, Sha1Key, Sha256Key, User
        from gufo.snmp.user import KeyType

        auth_cls = Sha256Key if creds.auth_protocol == "SHA256" else Sha1Key
        auth_key = priv_key = None
        if creds.auth_key is not None:
            auth_key = auth_cls(auth_cls.get_master_key(creds.auth_key.encode()), key_type=KeyType.Master)
        if creds.priv_protocol is not None and creds.priv_key is not None:
            priv_cls = Aes256Key if creds.priv_protocol == "AES256" else Aes128Key
            priv_key = priv_cls(auth_cls.get_master_key(creds.priv_key.encode()), key_type=KeyType.Master)
        user = self._users[creds] = User(creds.user or "", auth_key=auth_key, priv_key=priv_key)
        return user

    @staticmethod
    def _classify(target: SnmpTarget, exc: BaseException) -> tuple[ErrorKind, str]:
        from gufo.snmp import SnmpAuthError, SnmpDecodeError, SnmpEncodeError, SnmpError

        if isinstance(exc, TimeoutError):
            if _refused(exc):
                return "unreachable", "ICMP port unreachable (nothing listens on the SNMP port)"
            return "timeout", _timeout_message(target)
        if isinstance(exc, SnmpAuthError):
            return "auth_failure", "SNMPv3 authentication failed (unknown user name, wrong key or digest)"
        if isinstance(exc, SnmpDecodeError) or type(exc).__name__ == "PanicException":
            return "malformed", f"undecodable answer ({exc})"
        if isinstance(exc, SnmpEncodeError):
            return "error", f"request could not be encoded ({exc})"
        if isinstance(exc, _HostError):
            return "error", str(exc)
        if isinstance(exc, ConnectionRefusedError):
            return "unreachable", "ICMP port unreachable (nothing listens on the SNMP port)"
        if isinstance(exc, OSError) and exc.errno is not None:
            return "unreachable", f"network error: {exc.strerror or exc}"
        if isinstance(exc, SnmpError):
            return "error", f"SNMP error: {exc}"
        return "error", f"{type(exc).__name__}: {exc}"

    async def _get_one(self, target: SnmpTarget, oids: list[str], timeout: float, retries: int) -> SnmpResult:
        started = time.perf_counter()
        oids, problem = _check_oids(oids)
        if problem:
            return _failed(target, oids, "error", problem, started)
        kind: ErrorKind = "error"
        message = "no attempt made"
        try:
            session = await self._session(target, timeout)
        except BaseException as exc:
            if isinstance(exc, _PASS_THROUGH):
                raise
            kind, message = self._classify(target, exc)
            return _failed(target, oids, kind, message, started)
        fresh = False
        for _attempt in range(retries + 1):
            try:
                async with asyncio.timeout(timeout):
                    if not fresh:
                        await session.refresh()  # SNMPv3: engine-ID discovery + time sync; no-op on v2c
                        fresh = True
                    raw = await session.get_many(oids)
            except BaseException as exc:
                if isinstance(exc, _PASS_THROUGH):
                    raise
                kind, message = self._classify(target, exc)
                if kind == "timeout":
                    continue
                break
            got = {oid: _gufo_value(value) for oid, value in raw.items()}
            return _finish(target, oids, got, started)
        return _failed(target, oids, kind, message, started)

    async def get_many(
        self,
        requests: list[tuple[SnmpTarget, list[str]]],
        *,
        timeout: float,
        retries: int,
        concurrency: int,
    ) -> list[SnmpResult]:
        _check_params(timeout, retries, concurrency)
        self._check_open()

        async def one(target: SnmpTarget, oids: list[str]) -> SnmpResult:
            return await self._get_one(target, oids, timeout, retries)

        return await _bounded(requests, concurrency, one)

    async def walk(self, target: SnmpTarget, oid: str, *, timeout: float, retries: int) -> dict[str, int | str | bytes]:
        _check_params(timeout, retries)
        self._check_open()
        (base,), problem = _check_oids([oid])
        if problem:
            raise AdapterError(f"{target.label}: {problem}")
        out: dict[str, int | str | bytes] = {}
        try:
            session = await self._session(target, timeout)
            fresh = False
            iterator = None
            while True:
                for attempt in range(retries + 1):
                    try:
                        async with asyncio.timeout(timeout):
                            if not fresh:
                                await session.refresh()
                                fresh = True
                            if iterator is None:
                                iterator = session.fetch(base).__aiter__()
                            item = await iterator.__anext__()
                        break
                    except TimeoutError as exc:
                        if _refused(exc) or attempt == retries:
                            raise
                        # the bulk iterator re-sends the same page on the next __anext__()
                    except StopAsyncIteration:
                        return out
                key, value = item
                converted = _gufo_value(value)
                if converted is not None:
                    out[key] = converted
        except BaseException as exc:
            if isinstance(exc, _PASS_THROUGH):
                raise
            kind, message = self._classify(target, exc)
            _raise_for(kind, f"{target.label}: walk {base}: {message}", exc)

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("SNMP client is closed")

    def close(self) -> None:
        # gufo sockets belong to the per-request sessions and close when those are collected.
        self._closed = True
        self._users.clear()


def _refused(exc: BaseException) -> bool:
    """gufo raises ``TimeoutError("connection refused")`` for ICMP port unreachable; its asyncio wrapper
    re-raises that as a bare ``TimeoutError`` whose ``__cause__`` carries the message."""
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            return False
        if "refused" in str(seen):
            return True
        seen = seen.__cause__
    return False


def _gufo_value(value: object) -> SnmpValue:
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, bytes | bytearray):
        return _octets(bytes(value))
    if isinstance(value, float):  # Opaque float/double
        return repr(value)
    return str(value)


class _HostError(Exception):
    """A host name that does not resolve (kept inside this module)."""


async def _resolve(host: str) -> str:
    """IP literal as is; otherwise the first address ``getaddrinfo`` gives (IPv4 preferred)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise _HostError(f"cannot resolve host name {host!r}: {exc}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


# --------------------------------------------------------------------------------------------------------------
# pysnmp
# --------------------------------------------------------------------------------------------------------------

# pysnmp error indications → our kinds (by class name, so no pysnmp import is needed at module import time).
_PYSNMP_AUTH = {
    "UnknownUserName", "WrongDigest", "DecryptionError", "AuthenticationFailure", "AuthenticationError",
    "UnknownSecurityName", "UnsupportedSecurityLevel", "NotInTimeWindow", "UnknownEngineID", "NoAuthentication",
    "UnsupportedAuthProtocol", "UnsupportedPrivProtocol", "NoEncryption", "UnknownCommunityName",
}
_PYSNMP_MALFORMED = {"DeserializationError", "ParseError", "InvalidMsg", "DataMismatch", "EngineIDMismatch",
                     "EmptyResponse", "UnsupportedPDUtype", "UnknownPDUHandler", "UnsupportedMsgProcessingModel"}


class PysnmpClient(SnmpClient):
    """pysnmp 7 asyncio ``hlapi.v3arch`` (``get_cmd`` / ``bulk_walk_cmd``, ``lookupMib=False``).

    Reuse: one ``SnmpEngine`` for every SNMPv2c target and one per distinct SNMPv3 credential set (pysnmp's
    USM table holds one key set per user name), and one ``UdpTransportTarget`` per (host, port, timeout,
    retries); engines are bound to the event loop they were created in and re-created on a new loop.

    Library behaviour translated here (pysnmp 7.1):

    * failures come back as an *error indication* (``RequestTimedOut``, ``UnknownUserName``, ``WrongDigest``,
      ``DecryptionError`` …) or an error-status, not as exceptions; retries are pysnmp's own;
    * its UDP socket is shared and unconnected, so ICMP port unreachable is invisible → ``timeout``;
    * an undecodable datagram is dropped inside the engine (some garbage even raises ``TypeError`` in a loop
      callback). A guard around the engine's message dispatcher records the source address instead; a request
      that then times out is reported as ``malformed`` (otherwise — garbage pysnmp drops quietly — ``timeout``);
    * ``max_in_flight`` caps concurrency (default 32): pysnmp is CPU-bound, and more requests in flight only
      turn into spurious timeouts;
    * ``get_many`` registers every new target with the engine *before* the first request goes out: pysnmp
      rebuilds an O(targets) map after each change of its target table, so the default one-by-one
      registration makes a first cycle over N new targets O(N²) (1,600 targets: 43 s → 8 s).
    """

    kind = "pysnmp"

    def __init__(self, *, max_in_flight: int = 32, max_repetitions: int = 25) -> None:
        self._max_in_flight = max_in_flight
        self._max_repetitions = max_repetitions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engines: dict[tuple[str, ...], Any] = {}
        self._targets: dict[tuple[str, int, float, int], Any] = {}
        self._auths: dict[SnmpCredentials, Any] = {}
        self._registered: set[tuple[Any, ...]] = set()
        self._garbage: dict[tuple[str, int], float] = {}
        self._closed = False

    # -- engines, credentials, targets -------------------------------------------------------------------------

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._close_engines()
            self._loop = loop

    def _engine(self, creds: SnmpCredentials) -> Any:
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        key: tuple[str, ...]
        if creds.version == "2c":
            key = ("2c",)
        else:
            key = ("3", creds.user or "", creds.auth_protocol or "", creds.auth_key or "",
                   creds.priv_protocol or "", creds.priv_key or "")
        engine = self._engines.get(key)
        if engine is None:
            engine = SnmpEngine()
            self._guard_dispatcher(engine)
            self._engines[key] = engine
        return engine

    def _guard_dispatcher(self, engine: Any) -> None:
        """Record where undecodable datagrams come from instead of letting them raise in a loop callback."""
        dispatcher = engine.message_dispatcher
        receive = dispatcher.receive_message
        garbage = self._garbage

        def guarded(snmp_engine: Any, domain: Any, address: Any, whole_msg: bytes) -> Any:
            try:
                return receive(snmp_engine, domain, address, whole_msg)
            except Exception:
                now = time.monotonic()
                if len(garbage) > 10_000:  # keep the record small: only recent sources matter
                    for stale in [k for k, seen in garbage.items() if now - seen > 300]:
                        del garbage[stale]
                garbage[(str(address[0]), int(address[1]))] = now
                return b""

        dispatcher.receive_message = guarded

    @staticmethod
    def _auth(creds: SnmpCredentials) -> Any:
        from pysnmp.hlapi.v3arch.asyncio import (
            USM_AUTH_HMAC96_SHA,
            USM_AUTH_HMAC192_SHA256,
            USM_AUTH_NONE,
            USM_PRIV_CFB128_AES,
            USM_PRIV_CFB256_AES,
            USM_PRIV_NONE,
            CommunityData,
            UsmUserData,
        )

        if creds.version == "2c":
            return CommunityData(creds.community or "", mpModel=1)
        auth_proto = {"SHA": USM_AUTH_HMAC96_SHA, "SHA256": USM_AUTH_HMAC192_SHA256}.get(
            creds.auth_protocol or "", USM_AUTH_NONE)
        priv_proto = {"AES": USM_PRIV_CFB128_AES, "AES256": USM_PRIV_CFB256_AES}.get(
            creds.priv_protocol or "", USM_PRIV_NONE)
        return UsmUserData(creds.user or "", authKey=creds.auth_key, privKey=creds.priv_key,
                           authProtocol=auth_proto, privProtocol=priv_proto)

    async def _prepare(self, target: SnmpTarget, timeout: float, retries: int) -> tuple[Any, Any, Any]:
        """Engine, auth data and transport target for ``target``, registered with the engine once."""
        from pysnmp.hlapi.v3arch.asyncio import Udp6TransportTarget, UdpTransportTarget
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD

        creds = target.credentials
        engine = self._engine(creds)
        auth = self._auths.get(creds)
        if auth is None:
            auth = self._auths[creds] = self._auth(creds)
        key = (target.host, target.port, timeout, retries)
        transport = self._targets.get(key)
        if transport is None:
            cls = Udp6TransportTarget if ":" in target.host else UdpTransportTarget
            transport = await cls.create((target.host, target.port), timeout=timeout, retries=retries)
            self._targets[key] = transport
        registration = (creds, *key)
        if registration not in self._registered:
            # get_cmd() would do this itself; doing it up front for every new target matters: pysnmp rebuilds
            # its transport-to-tag map (O(targets)) on the next response after *each* change of the target
            # table, so registering targets one by one between responses is quadratic (1,600 new targets:
            # 43 s instead of ~7 s).
            LCD.configure(engine, auth, transport, b"")
            self._registered.add(registration)
        return engine, auth, transport

    # -- classification ----------------------------------------------------------------------------------------

    def _classify_indication(self, target: SnmpTarget, indication: Any, since: float,
                             address: tuple[str, int]) -> tuple[ErrorKind, str]:
        name = type(indication).__name__
        if name == "RequestTimedOut":
            seen = self._garbage.get((str(address[0]), int(address[1])))
            if seen is not None and seen >= since:
                return "malformed", "undecodable answer (dropped by the SNMP engine), then no valid answer"
            return "timeout", _timeout_message(target)
        if name in _PYSNMP_AUTH:
            return "auth_failure", f"SNMPv3 authentication failed ({indication})"
        if name in _PYSNMP_MALFORMED:
            return "malformed", f"undecodable answer ({indication})"
        return "error", f"SNMP engine error ({indication})"

    @staticmethod
    def _classify_exception(target: SnmpTarget, exc: BaseException) -> tuple[ErrorKind, str]:
        if isinstance(exc, TimeoutError):
            return "timeout", _timeout_message(target)
        text = str(exc)
        if "Bad IPv4/UDP transport address" in text or "Bad IPv6/UDP transport address" in text:
            return "error", f"cannot resolve host name {target.host!r}"
        if type(exc).__module__.startswith(("pyasn1", "pysnmp")) and "decod" in text.lower():
            return "malformed", f"undecodable answer ({type(exc).__name__}: {text})"
        return "error", f"{type(exc).__name__}: {text}"

    # -- operations --------------------------------------------------------------------------------------------

    async def _get_one(self, target: SnmpTarget, oids: list[str], timeout: float, retries: int) -> SnmpResult:
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, get_cmd

        started = time.perf_counter()
        since = time.monotonic()
        oids, problem = _check_oids(oids)
        if problem:
            return _failed(target, oids, "error", problem, started)
        try:
            # safety net over pysnmp's own timer (0.1 s resolution): never wait much longer than the budget
            async with asyncio.timeout(timeout * (retries + 1) + 1.0):
                engine, auth, transport = await self._prepare(target, timeout, retries)
                indication, status, index, var_binds = await get_cmd(
                    engine, auth, transport, ContextData(),
                    *(ObjectType(ObjectIdentity(oid)) for oid in oids), lookupMib=False)
        except BaseException as exc:
            if isinstance(exc, _PASS_THROUGH):
                raise
            kind, message = self._classify_exception(target, exc)
            return _failed(target, oids, kind, message, started)
        if indication:
            kind, message = self._classify_indication(target, indication, since, transport.transport_address)
            return _failed(target, oids, kind, message, started)
        if status:
            where = oids[int(index) - 1] if 0 < int(index) <= len(oids) else "?"
            return _failed(target, oids, "error", f"agent error-status {_pretty(status)} at {where}", started)
        got: dict[str, SnmpValue] = {}
        for var_bind in var_binds:
            got[str(var_bind[0])] = _pysnmp_value(var_bind[1])
        return _finish(target, oids, got, started)

    async def get_many(
        self,
        requests: list[tuple[SnmpTarget, list[str]]],
        *,
        timeout: float,
        retries: int,
        concurrency: int,
    ) -> list[SnmpResult]:
        _check_params(timeout, retries, concurrency)
        self._check_open()
        self._bind_loop()
        timeout = max(round(timeout, 2), 0.01)  # pysnmp keeps target timeouts in centiseconds

        async def one(target: SnmpTarget, oids: list[str]) -> SnmpResult:
            return await self._get_one(target, oids, timeout, retries)

        for target, _oids in requests:  # register every new target before the first request goes out
            try:
                await self._prepare(target, timeout, retries)
            except Exception:  # the same failure is reported as this request's result below
                pass
        return await _bounded(requests, min(concurrency, self._max_in_flight), one)

    async def walk(self, target: SnmpTarget, oid: str, *, timeout: float, retries: int) -> dict[str, int | str | bytes]:
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, bulk_walk_cmd

        _check_params(timeout, retries)
        self._check_open()
        self._bind_loop()
        timeout = max(round(timeout, 2), 0.01)
        (base,), problem = _check_oids([oid])
        if problem:
            raise AdapterError(f"{target.label}: {problem}")
        since = time.monotonic()
        out: dict[str, int | str | bytes] = {}
        try:
            engine, auth, transport = await self._prepare(target, timeout, retries)
            async for indication, status, _index, var_binds in bulk_walk_cmd(
                engine, auth, transport, ContextData(), 0, self._max_repetitions,
                ObjectType(ObjectIdentity(base)), lookupMib=False, lexicographicMode=False,
            ):
                if indication:
                    kind, message = self._classify_indication(target, indication, since, transport.transport_address)
                    _raise_for(kind, f"{target.label}: walk {base}: {message}")
                if status:
                    _raise_for("error", f"{target.label}: walk {base}: agent error-status {_pretty(status)}")
                for var_bind in var_binds:
                    value = _pysnmp_value(var_bind[1])
                    if value is not None:
                        out[str(var_bind[0])] = value
        except (AdapterError, AuthFailed):
            raise
        except BaseException as exc:
            if isinstance(exc, _PASS_THROUGH):
                raise
            kind, message = self._classify_exception(target, exc)
            _raise_for(kind, f"{target.label}: walk {base}: {message}", exc)
        return out

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("SNMP client is closed")

    def _close_engines(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        self._targets.clear()
        self._auths.clear()
        self._registered.clear()
        self._garbage.clear()
        for engine in engines:
            try:
                engine.close_dispatcher()
            except RuntimeError:  # its event loop is already closed: the sockets went with it
                pass

    def close(self) -> None:
        self._closed = True
        self._close_engines()


def _pretty(value: Any) -> str:
    pretty = getattr(value, "prettyPrint", None)
    return str(pretty()) if callable(pretty) else str(value)


def _pysnmp_value(value: Any) -> SnmpValue:
    from pyasn1.type import univ
    from pysnmp.proto.rfc1902 import IpAddress

    if isinstance(value, univ.Null):  # also NoSuchObject / NoSuchInstance / EndOfMibView
        return None
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, IpAddress):
        return ".".join(str(b) for b in value.asOctets())
    if isinstance(value, univ.OctetString):
        return _octets(value.asOctets())
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    return str(value)
