import time

from sqlalchemy import func, select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.sites.models import Site, SiteEvent
from ecocloud_ops.sites.service import build_divisions, national_divisions
from tests.conftest import SMALL_TREE, TEST_ACTOR


def test_seed_national_loads_the_tree_once(container: Container) -> None:
    with container.unit_of_work() as svc:
        report = svc.sites.seed_national(TEST_ACTOR)
    assert report.by_tier == {"ministry": 1, "province": 31, "city": 333, "county": 2843}
    assert report.added == 3208
    with container.unit_of_work() as svc:
        counts = svc.sites.counts_by_tier(Scope.everything())
        assert (counts.ministry, counts.province, counts.city, counts.county) == (1, 31, 333, 2843)
        audit_before = svc.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
        beijing = svc.sites.get("110101", Scope.everything())
        assert beijing.path == "000000/110000/110101/"
        t0 = time.perf_counter()
        hebei_subtree = svc.sites.subtree("130000", Scope.everything())
        elapsed = time.perf_counter() - t0
        assert {s.tier for s in hebei_subtree} == {"province", "city", "county"}
        assert all(s.code.startswith("13") for s in hebei_subtree) and len(hebei_subtree) > 150
        assert elapsed < 2.0, f"subtree of a province took {elapsed:.3f}s"
        assert [a.code for a in svc.sites.ancestors(svc.sites.get("130102", Scope.everything()))] == [
            "000000", "130000", "130100"]
    with container.unit_of_work() as svc:
        again = svc.sites.seed_national(TEST_ACTOR)
    assert not again.changed and again.unchanged == 3208
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == audit_before


def test_a_later_list_adds_renames_and_retires_without_losing_history(container: Container) -> None:
    with container.unit_of_work() as svc:
        svc.sites.sync(TEST_ACTOR, build_divisions(SMALL_TREE))
    newer = dict(SMALL_TREE)
    newer["130102"] = "长安新区"  # renamed
    del newer["130202"]  # merged away
    newer["130203"] = "路北区"  # new
    with container.unit_of_work() as svc:
        r = svc.sites.sync(TEST_ACTOR, build_divisions(newer))
    assert (r.added, r.renamed, r.retired) == (1, 1, 1)
    with container.unit_of_work() as svc:
        retired = svc.session.execute(select(Site).where(Site.code == "130202")).scalar_one()
        assert retired.retired_at is not None
        kinds = [e.kind for e in svc.sites.events(retired)]
        assert kinds == ["created", "retired"]
        renamed = svc.sites.get("130102", Scope.everything())
        assert renamed.name == "长安新区"
        ev = svc.session.execute(select(SiteEvent).where(SiteEvent.site_id == renamed.id,
                                                         SiteEvent.kind == "renamed")).scalar_one()
        assert (ev.old_value, ev.new_value) == ("长安区", "长安新区")
        rows, total = svc.sites.search(Scope.everything(), parent_code="130200")
        assert [s.code for s in rows] == ["130203"]
    with container.unit_of_work() as svc:  # it comes back in a still later list
        r = svc.sites.sync(TEST_ACTOR, build_divisions(SMALL_TREE))
    assert r.restored == 1 and r.renamed == 1 and r.retired == 1


def test_provincial_scope_sees_only_its_subtree(container: Container, small_tree: None) -> None:
    hebei = Scope.for_user("provincial_staff", "000000/130000/")
    with container.unit_of_work() as svc:
        rows, total = svc.sites.search(hebei, limit=100)
        assert {s.code[:2] for s in rows} == {"13"} and total == 6
        counts = svc.sites.counts_by_tier(hebei)
        assert (counts.ministry, counts.province, counts.city, counts.county) == (0, 1, 2, 3)
        import pytest

        from ecocloud_ops.errors import NotFound

        with pytest.raises(NotFound):
            svc.sites.get("440000", hebei)
        assert svc.sites.get("130100", hebei).name == "石家庄市"


def test_national_list_matches_the_package() -> None:
    assert len(national_divisions()) == 3208
