import json
from pathlib import Path

from sqlalchemy import delete, select, update

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.audit.service import verify_export
from ecocloud_ops.bootstrap import Container
from tests.conftest import TEST_ACTOR


def _some_history(container: Container) -> None:
    for i in range(5):
        with container.unit_of_work() as svc:
            svc.audit.record(TEST_ACTOR, "test.change", target_type="thing", target_id=i,
                             before={"v": i}, after={"v": i + 1, "password": "s3cret"})


def test_chain_verifies_and_secrets_are_not_stored(container: Container) -> None:
    _some_history(container)
    with container.unit_of_work() as svc:
        r = svc.audit.verify()
        assert r.ok and r.checked == 5
        stored = svc.session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert all(e.after["password"] == "***" for e in stored)
        assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
        assert stored[1].prev_hash == stored[0].hash


def test_database_edit_is_detected(container: Container) -> None:
    _some_history(container)
    with container.engine.begin() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="someone-else"))
    with container.unit_of_work() as svc:
        r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 3


def test_deleted_entries_are_detected(container: Container) -> None:
    _some_history(container)
    with container.engine.begin() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    with container.unit_of_work() as svc:
        r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 2 and "missing" in r.reason
    with container.engine.begin() as conn:  # deleting the tail is caught by the head
        conn.execute(delete(AuditEntry).where(AuditEntry.seq >= 2))
    with container.unit_of_work() as svc:
        r = svc.audit.verify()
    assert not r.ok and "deleted" in r.reason


def test_export_verifies_offline_and_tampering_is_caught(container: Container, tmp_path: Path) -> None:
    _some_history(container)
    with container.unit_of_work() as svc:
        lines = list(svc.audit.export_lines())
    header = json.loads(lines[0])
    assert "PRIVATE" not in lines[0] and "BEGIN PUBLIC KEY" in header["public_key"]
    assert verify_export(lines).ok
    entry = json.loads(lines[2])
    entry["detail"] = "nothing happened"
    tampered = lines[:2] + [json.dumps(entry)] + lines[3:]
    r = verify_export(tampered)
    assert not r.ok and r.first_bad_seq == 2
    assert not verify_export(lines[:1] + lines[2:]).ok  # an entry left out


def test_concurrent_writers_form_one_chain(container: Container) -> None:
    import threading

    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with container.unit_of_work() as svc:
                    svc.audit.record(TEST_ACTOR, f"w{n}", target_id=i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with container.unit_of_work() as svc:
        r = svc.audit.verify()
    assert r.ok and r.checked == 40
