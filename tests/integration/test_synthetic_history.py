"""Generated history through the poller's HistoryWriter: outages, cascades, flaps, gaps, rollups, rates.

Expected values are worked out by hand from the scenario (poll grid of 60 s from ``START``; a change
is seen at the first poll at or after it), never taken from the code under test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.migrate import upgrade
from ecocloud_ops.network.connectivity import ConnectivityService
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import Device, DeviceRollup, MaintenanceWindow, Outage, PollCycle, PollerGap
from ecocloud_ops.network.poller import PollEngine
from ecocloud_ops.network.synthetic import (
    Flap,
    LinkDown,
    Maintenance,
    Scenario,
    generate_demo_history,
    random_scenario,
    write_history,
)
from ecocloud_ops.network.synthetic import PollerGap as Gap
from ecocloud_ops.sites.service import build_divisions
from tests.conftest import BACKEND, TEST_ACTOR, drop_pg_database, fresh_database_url, make_container

NAMES = {"130000": "河北省", "130100": "石家庄市", "130102": "长安区", "130104": "桥西区", "130105": "新华区",
         "130200": "唐山市", "130202": "路南区", "130203": "路北区", "130204": "古冶区"}
#: Midnight of 1 November 2026 in Asia/Shanghai.
START = dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(days=2)
MIN = dt.timedelta(minutes=1)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> dt.datetime:
    return START + dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def load_tree(c: Container) -> None:
    with c.unit_of_work() as svc:
        svc.sites.sync(TEST_ACTOR, build_divisions(NAMES))
        svc.devices.import_inventory(TEST_ACTOR, [
            DeviceSpec(hostname=f"dev-{code}", address=f"198.18.{i}.1", site_code=code, snmp_community="c")
            for i, code in enumerate(sorted(NAMES), start=1)])


@pytest.fixture
def tree(container: Container) -> Container:
    load_tree(container)
    return container


def scenario() -> Scenario:
    return Scenario(START, END, poll_seconds=60, monitored_from={"dev-130105": at(5, 0, 1)}, events=[
        # Seen at the polls of 10:01 and 11:21: down 80 minutes.
        LinkDown("130100", at(10, 0, 30), at(11, 20, 10)),
        Maintenance("130100", at(11), at(12), "计划维护：光缆割接"),
        # Six downs of two minutes, every five minutes, from 20:00.
        Flap("130202", at(20), at(20, 30), period_seconds=300, down_seconds=120),
        # Across midnight, Asia/Shanghai: ten minutes on each day.
        LinkDown("130203", at(23, 50), at(24, 10)),
        # The poller stops from 30:00:20 to 30:20: the polls of 30:01 … 30:19 never run.
        Gap(at(30, 0, 20), at(30, 20)),
        # Fails inside the gap: seen at the first poll after it.
        LinkDown("130204", at(30, 5), at(31)),
    ])


def write(c: Container, sc: Scenario, demo: bool = True) -> Any:
    with c.unit_of_work() as svc:
        return write_history(svc.session, sc, demo=demo, flap_window_minutes=15)


def outages_by_host(c: Container) -> dict[str, list[Outage]]:
    with c.unit_of_work() as svc:
        out: dict[str, list[Outage]] = {}
        for o in svc.session.execute(select(Outage).order_by(Outage.started_at, Outage.id)).scalars():
            out.setdefault(o.device.hostname, []).append(o)
        return out


def test_a_city_link_down_blames_the_city_and_its_counties_are_unknown(tree: Container) -> None:
    stats = write(tree, scenario())
    assert stats.devices == 9 and stats.gaps == 1 and stats.maintenance == 1
    by_host = outages_by_host(tree)
    city = by_host["dev-130100"]
    assert [(o.status, o.cause, o.started_at, o.ended_at) for o in city] == [("down", "own", at(10, 1), at(11, 21))]
    for county in ("dev-130102", "dev-130104", "dev-130105"):
        assert [(o.status, o.cause, o.started_at, o.ended_at) for o in by_host[county]] == [
            ("unknown", "parent", at(10, 1), at(11, 21))], county
    assert "dev-130200" not in by_host and "dev-130000" not in by_host, "nothing above or beside the city"
    assert [(o.status, o.started_at, o.ended_at) for o in by_host["dev-130203"]] == [
        ("down", at(23, 50), at(24, 10))]
    assert [(o.status, o.started_at, o.ended_at) for o in by_host["dev-130204"]] == [
        ("down", at(30, 20), at(31))], "a failure inside a gap is seen at the first poll after it"
    assert stats.outages_opened == sum(len(v) for v in by_host.values())
    with tree.unit_of_work() as svc:
        devices = {d.hostname: d for d in svc.session.execute(select(Device)).scalars()}
    last_poll = END - MIN
    for d in devices.values():
        assert d.status == "up" and d.status_cause is None and d.last_polled_at == last_poll
        assert d.first_polled_at == (at(5, 1) if d.hostname == "dev-130105" else START)
    assert devices["dev-130100"].status_since == at(11, 21)
    assert devices["dev-130204"].status_since == at(31)
    assert devices["dev-130200"].status_since == START


def test_a_county_down_on_its_own_turns_unknown_when_its_city_fails(tree: Container) -> None:
    write(tree, Scenario(START, END, events=[LinkDown("130104", at(9, 50), at(10, 30)),
                                             LinkDown("130100", at(10), at(11)),
                                             LinkDown("130102", at(10, 30), at(11, 30))]))
    by_host = outages_by_host(tree)
    assert [(o.status, o.cause, o.started_at, o.ended_at) for o in by_host["dev-130104"]] == [
        ("down", "own", at(9, 50), at(10)), ("unknown", "parent", at(10), at(11))]
    # Failing under a failed city is unknown; still down when the city is back: blamed from then on.
    assert [(o.status, o.cause, o.started_at, o.ended_at) for o in by_host["dev-130102"]] == [
        ("unknown", "parent", at(10), at(11)), ("down", "own", at(11), at(11, 30))]


def test_a_flap_is_one_outage_with_its_periods(tree: Container) -> None:
    write(tree, scenario())
    [o] = outages_by_host(tree)["dev-130202"]
    starts = [at(20, 5 * i) for i in range(6)]
    assert o.status == "down" and o.flap_count == 5 and (o.started_at, o.ended_at) == (at(20), at(20, 27))
    assert [(p.started_at, p.ended_at) for p in o.periods] == [(s, s + 2 * MIN) for s in starts]


def test_gap_cycles_rollups_and_demo_flags(tree: Container) -> None:
    write(tree, scenario())
    with tree.unit_of_work() as svc:
        s = svc.session
        gap = s.execute(select(PollerGap)).scalar_one()
        # As the poller records it: from the end of the 30:00 cycle (1.5 s long) to the start of 30:20's.
        assert (gap.started_at, gap.ended_at) == (at(30, 0, 1.5), at(30, 20))
        cycles = list(s.execute(select(PollCycle).order_by(PollCycle.id)).scalars())
        assert len(cycles) == 2 * 24 * 60 - 19
        assert [c.started_at for c in cycles] == sorted(c.started_at for c in cycles), "ids follow time"
        assert all(c.finished_at <= gap.started_at or c.started_at >= gap.ended_at for c in cycles)  # type: ignore
        by_start = {c.started_at: c for c in cycles}
        c = by_start[at(10, 30)]  # the city is down, its three counties unknown
        assert (c.devices, c.up, c.down, c.unknown, c.snmp_errors) == (9, 5, 1, 3, 4)
        assert (by_start[at(4)].devices, by_start[at(4)].up) == (8, 8), "dev-130105 is not polled yet"
        assert (by_start[at(20, 6)].down, by_start[at(20, 7)].down) == (1, 0)
        assert cycles[-1].started_at == END - MIN
        for model in (Outage, PollCycle, PollerGap, MaintenanceWindow):
            assert s.execute(select(func.count()).select_from(model).where(model.demo.is_(False))).scalar_one() == 0
            assert s.execute(select(func.count()).select_from(model)).scalar_one() > 0

        def rollups(host: str, granularity: str) -> dict[dt.datetime, tuple[int, int]]:
            q = (select(DeviceRollup.bucket, DeviceRollup.polls, DeviceRollup.up_polls).join(
                Device, Device.id == DeviceRollup.device_id).where(Device.hostname == host,
                                                                   DeviceRollup.granularity == granularity))
            return {b: (p, u) for b, p, u in s.execute(q)}

        polls = 2 * 24 * 60 - 19  # every poll instant but the 19 of the gap
        city = rollups("dev-130100", "day")
        assert city == {START: (1440, 1440 - 80), START + dt.timedelta(days=1): (1440 - 19, 1440 - 19)}, \
            "days are Asia/Shanghai days"
        assert sum(p for p, _u in city.values()) == polls
        up_seconds = (END - START).total_seconds() - (gap.ended_at - gap.started_at).total_seconds() - 80 * 60
        assert sum(u for _p, u in city.values()) == pytest.approx(up_seconds / 60, abs=1)
        hours = rollups("dev-130100", "hour")
        assert len(hours) == 48 and sum(p for p, _u in hours.values()) == polls
        assert hours[at(10)] == (60, 1) and hours[at(11)] == (60, 39) and hours[at(30)] == (41, 41)
        across = rollups("dev-130203", "day")
        assert across == {START: (1440, 1430), START + dt.timedelta(days=1): (1421, 1411)}
        late = rollups("dev-130105", "day")  # monitored from 05:01
        assert late[START] == (1440 - 301, 1440 - 301 - 80)
        rtt = s.execute(select(func.sum(DeviceRollup.rtt_count), func.sum(DeviceRollup.up_polls)).where(
            DeviceRollup.granularity == "day")).one()
        assert rtt[0] == rtt[1] and s.execute(select(func.max(DeviceRollup.rtt_max))).scalar_one() > 0


def test_rates_from_generated_history(tree: Container) -> None:
    write(tree, scenario())
    with tree.unit_of_work() as svc:
        rates = ConnectivityService(svc.session).compute(Scope.everything(), START, END, now=END)
    links = {x.site_code: x for x in rates.links}
    monitored = 2 * 86400 - (20 * 60 - 1.5)  # minus the gap, 30:00:01.5 – 30:20
    # City: down 10:01 – 11:21, of which 11:00 – 11:21 is inside its maintenance window (11:00 – 12:00).
    assert links["130100"].down_seconds == 59 * 60
    assert links["130100"].up_seconds == monitored - 3600 - 59 * 60
    # Its counties were unknown for the 80 minutes: counted in neither.
    for code in ("130102", "130104"):
        assert (links[code].up_seconds, links[code].down_seconds) == (monitored - 80 * 60, 0)
    assert (links["130105"].up_seconds, links["130105"].down_seconds) == (monitored - (5 * 3600 + 60) - 80 * 60, 0)
    assert links["130202"].down_seconds == 6 * 120, "a flap's up time between its periods is not down"
    assert links["130203"].down_seconds == 20 * 60
    assert links["130204"].down_seconds == 40 * 60
    assert (links["130000"].up_seconds, links["130000"].down_seconds) == (monitored, 0)
    assert links["130100"].outages == 1 and links["130102"].outages == 0


def test_write_history_refuses_to_rewrite_polled_time(tree: Container) -> None:
    write(tree, Scenario(START, END))
    with pytest.raises(ValueError, match="after the scenario's start"):
        write(tree, Scenario(START + dt.timedelta(hours=1), END))
    # Continuing after the stored history is fine (a failure from before is seen at the first poll).
    stats = write(tree, Scenario(END, END + dt.timedelta(hours=1),
                                 events=[LinkDown("130200", END - MIN, END + 5 * MIN)]))
    assert stats.gaps == 0, "the last stored cycle ended 58.5 s before the first generated one"
    assert [(o.started_at, o.ended_at) for o in outages_by_host(tree)["dev-130200"]] == [(END, END + 5 * MIN)]
    # Two hours later: the poller would see a gap since the last cycle, and so does the generator.
    later = END + dt.timedelta(hours=3)
    assert write(tree, Scenario(later, later + dt.timedelta(hours=1))).gaps == 1
    with tree.unit_of_work() as svc:
        gap = svc.session.execute(select(PollerGap).order_by(PollerGap.started_at.desc())).scalars().first()
        assert gap is not None and (gap.started_at, gap.ended_at) == (END + 59 * MIN + dt.timedelta(seconds=1.5),
                                                                     later)


@pytest.fixture
def second_container(tmp_path: Path) -> Iterator[Container]:
    url = fresh_database_url(tmp_path, f"ecocloud_test_synthetic_{id(tmp_path)}")
    c = make_container(tmp_path / "second", url)
    upgrade(c)
    yield c
    c.dispose()
    if BACKEND == "postgresql":
        drop_pg_database(url)


def outage_rows(c: Container) -> list[tuple[Any, ...]]:
    return [(o.device.hostname, o.device.site.code, o.status, o.cause, o.started_at, o.ended_at, o.flap_count,
             o.demo, [(p.started_at, p.ended_at) for p in o.periods])
            for o in sum(outages_by_host(c).values(), [])]


def test_the_same_scenario_twice_gives_identical_outages(tree: Container, second_container: Container) -> None:
    load_tree(second_container)
    stats = []
    for c in (tree, second_container):
        with c.unit_of_work() as svc:
            sc = random_scenario(svc.session, START, START + dt.timedelta(days=10), seed=11, outages=60,
                                 cascades=3, maintenance=2, flaps=2)
            stats.append(write_history(svc.session, sc, demo=True, flap_window_minutes=15).as_dict())
    first, second = outage_rows(tree), outage_rows(second_container)
    assert first == second and len(first) > 60
    assert {k: v for k, v in stats[0].items() if k != "seconds"} == {k: v for k, v in stats[1].items()
                                                                     if k != "seconds"}


def test_random_scenarios_are_realistic_and_deterministic(tree: Container) -> None:
    with tree.unit_of_work() as svc:
        a = random_scenario(svc.session, START, START + dt.timedelta(days=30), seed=5)
        b = random_scenario(svc.session, START, START + dt.timedelta(days=30), seed=5)
        other = random_scenario(svc.session, START, START + dt.timedelta(days=30), seed=6)
    assert a.events == b.events and a.events != other.events
    kinds = [type(e).__name__ for e in a.events]
    assert kinds.count("PollerGap") == 1 and kinds.count("Flap") >= 1 and kinds.count("Maintenance") >= 1
    gap = next(e for e in a.events if isinstance(e, Gap))
    assert dt.timedelta(minutes=17) < gap.end - gap.start < dt.timedelta(minutes=25)
    downs = [e for e in a.events if isinstance(e, LinkDown)]
    assert len(downs) >= 8
    assert all(START <= e.start < e.end <= START + dt.timedelta(days=30) for e in a.events)
    assert all(e.site_code != "000000" for e in downs)
    local_days = {(e.start.astimezone(dt.timezone(dt.timedelta(hours=8))).date(),
                   e.end.astimezone(dt.timezone(dt.timedelta(hours=8))).date()) for e in downs}
    assert any(d1 != d2 for d1, d2 in local_days), "one outage crosses midnight, Asia/Shanghai"


def test_demo_history_hands_over_to_the_live_poller_without_a_gap(tree: Container) -> None:
    now = dt.datetime(2026, 11, 15, 4, 0, 7, 250000, tzinfo=dt.UTC)
    said: list[str] = []
    stats = generate_demo_history(tree, said.append, now=now)
    assert stats is not None and stats.devices == 9 and "demo history" in said[-1]
    with tree.unit_of_work() as svc:
        s = svc.session
        first, last = s.execute(select(PollCycle).order_by(PollCycle.id)).scalars().first(), \
            s.execute(select(PollCycle).order_by(PollCycle.id.desc())).scalars().first()
        assert first is not None and last is not None
        october = dt.datetime(2026, 9, 30, 16, tzinfo=dt.UTC)  # 1 October, Asia/Shanghai
        assert october - MIN < first.started_at <= october and last.finished_at == now
        gaps = s.execute(select(func.count()).select_from(PollerGap)).scalar_one()
        assert all(d.first_polled_at == first.started_at and d.status == "up"
                   for d in s.execute(select(Device)).scalars())
        oldest_hour = s.execute(select(func.min(DeviceRollup.bucket)).where(DeviceRollup.granularity == "hour")
                                ).scalar_one()
        assert oldest_hour >= now - dt.timedelta(days=tree.settings.retention_hourly_days, hours=1)
        for model in (Outage, PollCycle, PollerGap, MaintenanceWindow):
            assert s.execute(select(func.count()).select_from(model).where(model.demo.is_(False))).scalar_one() == 0
    assert generate_demo_history(tree, said.append, now=now) is None and "already" in said[-1]
    engine = PollEngine(tree)
    try:
        engine.store(now + dt.timedelta(seconds=65), [], [], {})  # the live poller's first cycle
    finally:
        engine.close()
    with tree.unit_of_work() as svc:
        assert svc.session.execute(select(func.count()).select_from(PollerGap)).scalar_one() == gaps
        live = svc.session.execute(select(PollCycle).order_by(PollCycle.id.desc())).scalars().first()
        assert live is not None and live.demo is False


def test_no_demo_history_without_devices(container: Container, small_tree: None) -> None:
    said: list[str] = []
    assert generate_demo_history(container, said.append) is None and "no enabled uplink devices" in said[-1]
