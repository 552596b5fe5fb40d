from ecocloud_ops.bootstrap import Container
from ecocloud_ops.migrate import upgrade
from ecocloud_ops.policies.models import Policy
from tests.conftest import TEST_ACTOR


def test_upgrade_seeds_missing_policies_and_keeps_edits(container: Container) -> None:
    with container.unit_of_work() as svc:
        assert svc.policies.security().lockout_threshold == 5
        svc.policies.update(TEST_ACTOR, "security", {"lockout_threshold": 7})
    assert upgrade(container) == []
    with container.unit_of_work() as svc:
        assert svc.policies.security().lockout_threshold == 7
        svc.session.delete(svc.session.get(Policy, "security"))
    assert upgrade(container) == ["security"]
    with container.unit_of_work() as svc:
        assert svc.policies.security().lockout_threshold == 5


def test_invalid_policy_edit_is_refused(container: Container) -> None:
    import pytest

    from ecocloud_ops.errors import ValidationFailed

    with container.unit_of_work() as svc, pytest.raises(ValidationFailed, match="password_min_length"):
        svc.policies.update(TEST_ACTOR, "security", {"password_min_length": 3})
