"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import re
import secrets
import string
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..policies.service import SecurityPolicy

_hasher = PasswordHasher()
# A hash to compare against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def weak_passwords() -> frozenset[str]:
    text = resources.files("ecocloud_ops.auth").joinpath("weak_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def character_classes(password: str) -> int:
    return sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]"))


def password_problems(password: str, username: str, policy: SecurityPolicy) -> list[str]:
    """Every rule the candidate breaks, as English messages (translated in the console)."""
    problems = []
    if len(password) < policy.password_min_length:
        problems.append(f"must be at least {policy.password_min_length} characters long")
    if len(password) > 128:
        problems.append("must be at most 128 characters long")
    if character_classes(password) < policy.password_min_classes:
        problems.append(
            f"must mix at least {policy.password_min_classes} of: lower case, upper case, digits, symbols")
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    lowered = password.lower()
    stem = lowered.rstrip(string.digits + string.punctuation)
    if lowered in weak_passwords() or (stem and stem in weak_passwords()):
        problems.append("is a commonly used weak password")
    return problems


def generate_password(length: int = 16) -> str:
    """A random password that satisfies the default policy."""
    alphabet = string.ascii_letters + string.digits + "!@#%^*-_=+"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if character_classes(pw) == 4:
            return pw
