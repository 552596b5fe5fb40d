import re
from pathlib import Path

from ecocloud_ops.auth.permissions import PERMISSIONS, ROLE_PERMISSIONS, Role, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_role_has_a_row_and_only_known_permissions() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    for role, perms in ROLE_PERMISSIONS.items():
        assert perms <= set(PERMISSIONS), role


def test_role_separation() -> None:
    changes = {p for p in PERMISSIONS if not p.endswith((".read", ".view"))} - {"audit.export", "tokens.own"}
    assert not ROLE_PERMISSIONS[Role.AUDITOR] & changes, "the auditor changes nothing"
    assert "audit.read" not in ROLE_PERMISSIONS[Role.ADMIN], "the admin does not read the audit log"
    assert "security.manage" not in ROLE_PERMISSIONS[Role.ADMIN]
    assert "users.manage" not in ROLE_PERMISSIONS[Role.SECURITY_ADMIN]
    assert "audit.read" in ROLE_PERMISSIONS[Role.SECURITY_ADMIN]


def test_readme_prints_the_current_table() -> None:
    text = README.read_text("utf-8")
    m = re.search(r"<!-- roles:begin -->\n(.*?)\n<!-- roles:end -->", text, re.S)
    assert m, "README lacks the roles table markers"
    assert m.group(1).strip() == markdown_table().strip(), "regenerate with: ecocloud-ops roles --markdown"
