from ecocloud_ops.auth.passwords import (
    generate_password,
    hash_password,
    password_problems,
    verify_password,
)
from ecocloud_ops.policies.service import SecurityPolicy

POLICY = SecurityPolicy()


def test_argon2id_hash_and_verify() -> None:
    h = hash_password("Tr0ub4dor&3-long")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "Tr0ub4dor&3-long")
    assert not verify_password(h, "Tr0ub4dor&3-lonG")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_policy_rules() -> None:
    assert password_problems("Green-River-2026", "zhang", POLICY) == []
    assert any("12 characters" in p for p in password_problems("Ab1!short", "zhang", POLICY))
    assert any("mix at least 3" in p for p in password_problems("alllowercaseletters", "zhang", POLICY))
    assert any("username" in p for p in password_problems("Zhangsan-2026!", "zhangsan", POLICY))


def test_common_weak_passwords_are_refused_even_with_suffixes() -> None:
    for weak in ("P@ssw0rd", "Admin@123456", "1qaz@WSX1234", "Huawei@123!!"):
        assert any("weak" in p for p in password_problems(weak.ljust(12, "!") if len(weak) < 12 else weak,
                                                          "zhang", POLICY)), weak


def test_generated_passwords_satisfy_the_default_policy() -> None:
    for _ in range(20):
        pw = generate_password()
        assert password_problems(pw, "admin", POLICY) == []
