"""Dependency-aware status: only the failing tier's link is blamed."""

from ecocloud_ops.network.status import ProbeResult, classify

PATHS = {
    "000000": "000000/", "130000": "000000/130000/", "130100": "000000/130000/130100/",
    "130102": "000000/130000/130100/130102/", "130200": "000000/130000/130200/",
    "130202": "000000/130000/130200/130202/", "440000": "000000/440000/",
}


def results(reachable: dict[str, bool]) -> list[ProbeResult]:
    return [ProbeResult(device=f"dev-{code}", site_code=code, reachable=ok) for code, ok in reachable.items()]


def by_site(rs: list[ProbeResult]) -> dict[str, tuple[str, str | None]]:
    return {r.site_code: (r.status, r.cause) for r in rs}


def test_a_down_city_makes_its_counties_unknown() -> None:
    rs = results({"130000": True, "130100": False, "130102": False, "130200": True, "130202": True})
    classify(rs, PATHS, {})
    assert by_site(rs) == {"130000": ("up", None), "130100": ("down", "own"), "130102": ("unknown", "parent"),
                           "130200": ("up", None), "130202": ("up", None)}


def test_a_down_province_cascades_through_unmonitored_cities() -> None:
    # 130100 has no device: its county takes the state of the nearest monitored ancestor.
    rs = results({"130000": False, "130102": False, "440000": True})
    classify(rs, PATHS, {})
    assert by_site(rs) == {"130000": ("down", "own"), "130102": ("unknown", "parent"), "440000": ("up", None)}


def test_a_county_down_under_an_up_city_is_its_own_fault_even_if_the_city_is_unmonitored() -> None:
    rs = results({"130000": True, "130102": False})
    classify(rs, PATHS, {})
    assert by_site(rs)["130102"] == ("down", "own")


def test_a_site_with_two_uplinks_is_up_if_one_answers() -> None:
    rs = [ProbeResult(device="a", site_code="130100", reachable=False),
          ProbeResult(device="b", site_code="130100", reachable=True),
          ProbeResult(device="c", site_code="130102", reachable=False)]
    classify(rs, PATHS, {})
    assert [(r.device, r.status) for r in rs] == [("a", "down"), ("b", "up"), ("c", "down")]


def test_non_uplink_devices_do_not_decide_the_site() -> None:
    rs = [ProbeResult(device="core", site_code="130100", reachable=True),
          ProbeResult(device="up", site_code="130100", reachable=False),
          ProbeResult(device="cty", site_code="130102", reachable=False)]
    classify(rs, PATHS, {"core": "core", "up": "uplink", "cty": "uplink"})
    assert [(r.device, r.status, r.cause) for r in rs] == [
        ("core", "up", None), ("up", "down", "own"), ("cty", "unknown", "parent")]


def test_counter_deltas_are_exact_and_ignore_wraps_and_resets() -> None:
    from ecocloud_ops.network.poller import _delta

    big = 2**64 - 10
    assert _delta(big, str(big - 1_000_003)) == 1_000_003
    assert _delta(5, str(big)) == 0, "a wrap or an agent restart is not traffic"
    assert _delta(100, None) == 0 and _delta(None, "5") == 0
