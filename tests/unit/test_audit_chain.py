"""The chain verifier on plain dicts, as an auditor runs it offline."""

import copy
import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ecocloud_ops.audit.service import GENESIS, compute_hash, entry_fields, mask_secrets, verify_entries
from ecocloud_ops.crypto import AuditSigner


def chain(n: int, signer: AuditSigner) -> list[dict]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        e = {"seq": i, "at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC).isoformat(), "actor": "a", "actor_role": "",
             "channel": "cli", "ip": "", "action": "x", "target_type": "t", "target_id": str(i),
             "outcome": "success", "before": None, "after": {"n": i}, "detail": ""}
        e["prev_hash"] = prev
        e["hash"] = compute_hash(entry_fields(e), prev)
        e["signature"] = signer.sign(e["hash"])
        prev = e["hash"]
        out.append(e)
    return out


def test_intact_chain_verifies() -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    r = verify_entries(chain(5, signer), signer.public_key, GENESIS, 1)
    assert r.ok and r.checked == 5 and r.head_seq == 5


def test_edited_entry_is_reported() -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    entries = chain(5, signer)
    entries[2]["after"] = {"n": 999}
    r = verify_entries(entries, signer.public_key, GENESIS, 1)
    assert not r.ok and r.first_bad_seq == 3 and "hash" in r.reason


def test_rehashed_entry_without_the_key_fails_on_its_signature() -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    entries = chain(4, signer)
    forged = copy.deepcopy(entries)
    forged[1]["after"] = {"n": 42}
    forged[1]["hash"] = compute_hash(entry_fields(forged[1]), forged[1]["prev_hash"])
    r = verify_entries(forged, signer.public_key, GENESIS, 1)
    assert not r.ok and r.first_bad_seq == 2 and "signature" in r.reason


def test_resigned_chain_with_another_key_fails() -> None:
    signer, attacker = AuditSigner(Ed25519PrivateKey.generate()), AuditSigner(Ed25519PrivateKey.generate())
    r = verify_entries(chain(3, attacker), signer.public_key, GENESIS, 1)
    assert not r.ok and r.first_bad_seq == 1


def test_missing_entry_is_reported() -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    entries = chain(5, signer)
    del entries[3]
    r = verify_entries(entries, signer.public_key, GENESIS, 1)
    assert not r.ok and r.first_bad_seq == 4 and "missing" in r.reason


def test_secrets_are_masked() -> None:
    masked = mask_secrets({"username": "u", "password": "p", "nested": {"snmp_community": "c", "ok": 1},
                           "totp_secret": None})
    assert masked == {"username": "u", "password": "***", "nested": {"snmp_community": "***", "ok": 1},
                      "totp_secret": None}
