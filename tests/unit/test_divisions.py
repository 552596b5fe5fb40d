from collections import Counter

from ecocloud_ops.sites.models import MINISTRY_CODE, Tier
from ecocloud_ops.sites.service import build_divisions, national_divisions


def test_national_list_has_31_provinces_and_every_city_and_county() -> None:
    divs = national_divisions()
    counts = Counter(d.tier for d in divs)
    assert counts[Tier.MINISTRY] == 1 and counts[Tier.PROVINCE] == 31
    assert 320 <= counts[Tier.CITY] <= 340 and 2800 <= counts[Tier.COUNTY] <= 2900
    codes = {d.code for d in divs}
    assert not {c for c in codes if c[:2] in ("71", "81", "82")}, "Hong Kong, Macao and Taiwan are excluded"


def test_parents_come_first_and_exist() -> None:
    seen = set()
    for d in national_divisions():
        assert d.parent_code is None or d.parent_code in seen, d
        seen.add(d.code)


def test_county_level_units_without_a_city_hang_under_their_province() -> None:
    by_code = {d.code: d for d in national_divisions()}
    assert by_code["110101"].parent_code == "110000"  # Beijing's districts
    assert by_code["500101"].parent_code == "500000"  # Chongqing's districts
    assert by_code["419001"].parent_code == "410000"  # Jiyuan, province-administered
    assert by_code["429004"].parent_code == "420000"  # Xiantao
    assert by_code["469001"].parent_code == "460000"  # Wuzhishan
    assert by_code["659001"].parent_code == "650000"  # Shihezi
    assert by_code["130102"].parent_code == "130100"  # an ordinary district under its city
    assert by_code["110000"].parent_code == MINISTRY_CODE


def test_build_divisions_drops_orphans_and_excluded_regions() -> None:
    divs = build_divisions({"130000": "河北省", "130100": "石家庄市", "990101": "无省", "810000": "香港",
                            "130102": "长安区"})
    assert [d.code for d in divs] == ["000000", "130000", "130100", "130102"]
