"""Masking secrets in device configurations and diffs (ecocloud_ops.adapters.ssh), plus the adapter's plain data.

The snippets are written the way the devices print them (Huawei VRP 5.170, H3C Comware 7, Cisco IOS, Ruijie
RGOS, Linux). No network here: the SSH sessions themselves are in tests/lab/test_ssh_adapter.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecocloud_ops.adapters.ssh import (
    MASK,
    PLATFORM_COMMANDS,
    SshTarget,
    config_diff,
    host_key_fingerprint,
    mask_secrets,
)
from ecocloud_ops.errors import ValidationFailed
from ecocloud_ops.lab.fake_cli import PLATFORMS

# (line as the device prints it, the same line masked)
CASES = [
    # --- Huawei VRP
    (" snmp-agent community read cipher %^%#X@5#;u2T!K&^7%3E|r0V@C$d`:B1b4l=;P=q!aE)e8Fq;b0%^%#",
     " snmp-agent community read cipher ******"),
    (" snmp-agent community write cipher %^%#a b c%^%# mib-view iso-view acl 2001",
     " snmp-agent community write cipher ****** mib-view iso-view acl 2001"),
    (" snmp-agent community read public", " snmp-agent community read ******"),
    (" snmp-agent target-host trap address udp-domain 10.1.1.20 params securityname cipher %^%#Cz&7F>S;1C%^%# v2c",
     " snmp-agent target-host trap address udp-domain 10.1.1.20 params securityname cipher ****** v2c"),
    (" snmp-agent usm-user v3 netops authentication-mode sha cipher %^%#9G7y8XnS$>2[uGq/4%^%#",
     " snmp-agent usm-user v3 netops authentication-mode sha cipher ******"),
    (" snmp-agent usm-user v3 netops privacy-mode aes128 cipher %^%#a]3Z{k)h9P-&Tg%^%#",
     " snmp-agent usm-user v3 netops privacy-mode aes128 cipher ******"),
    (' local-user admin password irreversible-cipher $1c$Ro0mR%W*^5$Ocq`~Kt5-Qv`O*H0fC;4"!g#9U"UIP"0Pq%Gvp=0$',
     " local-user admin password irreversible-cipher ******"),
    (" local-user ops password cipher %^%#k3!Ld9@x%^%#", " local-user ops password cipher ******"),
    (" set authentication password cipher $1a$>.Fl5#n]j~$vV<{WKYb~1f,*4/1RDT;6ApT1kT8'A&RUa8Ys8Z5$",
     " set authentication password cipher ******"),
    (" hwtacacs-server shared-key cipher %^%#q0e]9Z3dC-0W{lN$u@gX%^%#", " hwtacacs-server shared-key cipher ******"),
    (" radius-server shared-key cipher %^%#Lq0e]9Z%^%#", " radius-server shared-key cipher ******"),
    (" pre-shared-key cipher %^%#(sH8|E#=2u%^%#", " pre-shared-key cipher ******"),
    (" ospf authentication-mode md5 1 cipher %^%#Vh7$Kx%^%#", " ospf authentication-mode md5 1 cipher ******"),
    (" ospf authentication-mode simple plain Ospf-Key-1", " ospf authentication-mode simple plain ******"),
    # --- H3C Comware
    (" snmp-agent community read cipher $c$3$kQn1L5/k7XaD1PPeQ6ri3M2dJcp5lg==",
     " snmp-agent community read cipher ******"),
    (" snmp-agent community write simple private-rw acl 2000", " snmp-agent community write simple ****** acl 2000"),
    (" snmp-agent target-host trap address udp-domain 10.1.1.20 params securityname public v2c",
     " snmp-agent target-host trap address udp-domain 10.1.1.20 params securityname ****** v2c"),
    (" snmp-agent usm-user v3 netops ops simple authentication-mode sha Auth-Key-2026 privacy-mode aes128 Priv-2026",
     " snmp-agent usm-user v3 netops ops simple authentication-mode sha ****** privacy-mode aes128 ******"),
    (" snmp-agent usm-user v3 netops ops cipher authentication-mode sha $c$3$Ab+== privacy-mode aes128 $c$3$Cd==",
     " snmp-agent usm-user v3 netops ops cipher authentication-mode sha ****** privacy-mode aes128 ******"),
    (" password hash $h$6$q3eDtXv1GxPJr2Qb$0Kx2y1P3vLqT8M6w9s4nHcZ7rJ5aU1fE3dG6hB8kN2pR4tV7x==",
     " password hash ******"),
    (" password simple Admin@123", " password simple ******"),
    (" password cipher $c$3$Jk2bM9A6Qh8==", " password cipher ******"),
    (" key authentication cipher $c$3$Yq2Xo0YxTn3hUJcB0N5v1m0Hc8Ue6R4pKw==", " key authentication cipher ******"),
    (" key accounting simple Radius-Acct", " key accounting simple ******"),
    # --- Cisco IOS
    ("snmp-server community Pub1ic-R0 RO 10", "snmp-server community ****** RO 10"),
    ("snmp-server community priv@te RW", "snmp-server community ****** RW"),
    ("snmp-server host 10.1.1.20 version 2c Trap-C0mm", "snmp-server host 10.1.1.20 version 2c ******"),
    ("snmp-server host 10.1.1.20 informs version 2c Trap-C0mm", "snmp-server host 10.1.1.20 informs version 2c ******"),
    ("snmp-server user netops ops v3 auth sha Auth-Pass-1 priv aes 128 Priv-Pass-1",
     "snmp-server user netops ops v3 auth sha ****** priv aes 128 ******"),
    ("enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "enable secret 5 ******"),
    ("enable secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM", "enable secret 9 ******"),
    ("enable password 7 0822455D0A16", "enable password 7 ******"),
    ("username admin privilege 15 secret 8 $8$dsYGNam3K1SIJO$7nv/35M/qr6t.dVc7UY9zrJDWRVqncHub1PE9UlMQFs",
     "username admin privilege 15 secret 8 ******"),
    ("username ops password 7 104D000A0618", "username ops password 7 ******"),
    (" password 7 01100F175804", " password 7 ******"),
    (" password cisco", " password ******"),
    (" key-string 7 070C285F4D06", " key-string 7 ******"),
    ("tacacs-server host 10.1.1.5 key 7 13061E010803", "tacacs-server host 10.1.1.5 key 7 ******"),
    ("radius-server key Rad1us-K3y", "radius-server key ******"),
    (" key 7 05080F1C2243", " key 7 ******"),
    ("crypto isakmp key Isakmp-Psk address 203.0.113.7", "crypto isakmp key ****** address 203.0.113.7"),
    (" pre-shared-key address 203.0.113.7 key Ikev1-Psk", " pre-shared-key address 203.0.113.7 key ******"),
    (" pre-shared-key local 0 Ikev2-Local", " pre-shared-key local 0 ******"),
    ("ntp authentication-key 1 md5 104D000A0618 7", "ntp authentication-key 1 md5 ****** 7"),
    (" ip ospf message-digest-key 1 md5 7 01100F175804", " ip ospf message-digest-key 1 md5 7 ******"),
    (" ip ospf authentication-key 7 0822455D0A16", " ip ospf authentication-key 7 ******"),
    # --- Ruijie RGOS (Cisco-like)
    ("snmp-server community 7 0e5c6f1d2a ro", "snmp-server community 7 ****** ro"),
    ("enable secret 5 $1$Dc3x$y8pMsx7s0E2HGe0hWZ8Ww/", "enable secret 5 ******"),
    ("username ruijie password 7 052b24384d", "username ruijie password 7 ******"),
    # --- Linux
    ("root:$y$j9T$e9UP5LkQYs1vJ0pBq9lUv.$3HRsYlC2QHpkL9jC1YjzVYhZQb1m8sQJ2d1Yf5yTqD7:19700:0:99999:7:::",
     "root:******:19700:0:99999:7:::"),
    ("ecolab:$6$rounds=5000$saltsalt$Jh8qg1p7QpH4Ks0Zr6m7f1:19850:0:99999:7:::", "ecolab:******:19850:0:99999:7:::"),
    ("olduser:$1$abcd$Q7N3bE7vZ7hDcb3fzZ8aS/:0:0:root:/root:/bin/bash", "olduser:******:0:0:root:/root:/bin/bash"),
    (' encrypted-password "$6$Kq4Y0$JmV2Nqz3Hk9oP7"', " encrypted-password ******"),
]

# Lines that hold no secret and must come through unchanged.
UNCHANGED = [
    " snmp-agent community complexity-check disable",
    " snmp-agent sys-info version v2c v3",
    " snmp-agent usm-user v3 netops group ops",
    " ssh server cipher aes256_ctr aes128_ctr",
    " ssh client cipher aes256_ctr",
    " ssh2 algorithm cipher aes128-ctr aes256-ctr",
    " authentication-mode password",
    " authentication-mode aaa",
    " ssh user admin authentication-type password",
    " password-recovery enable",
    "service password-encryption",
    "security passwords min-length 8",
    "key chain OSPF-KEYS",
    " key 1",
    "crypto key generate rsa modulus 2048",
    "snmp-server host 10.1.1.20 version 3 priv netops",
    " clock timezone Beijing add 08:00:00",
    " ip address 10.130.0.2 255.255.255.0",
    "interface GigabitEthernet0/0/1",
    "daemon:*:19700:0:99999:7:::",
    "nobody:!:19700::::::",
    "root:x:0:0:root:/root:/bin/bash",
    "echo $HOME $PATH",
    "",
]

PEM = """\
crypto pki import
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAu6Yk0GtlkmEp5yKq1cB3FZ0l1ZQw7yq1JmXHb5lQ7q2m1a0A
4bqzX8w5Sg6d9Hn3jYQ2FRr0o8aYk2lT0lQ==
-----END RSA PRIVATE KEY-----
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
-----END OPENSSH PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUJ1
-----END CERTIFICATE-----
"""


@pytest.mark.parametrize(("line", "masked"), CASES, ids=[c[1].strip()[:40] for c in CASES])
def test_masks_the_secret_and_keeps_the_rest_of_the_line(line: str, masked: str) -> None:
    assert mask_secrets(line) == masked
    assert mask_secrets(line + "\n") == masked + "\n"
    assert mask_secrets(masked) == masked  # idempotent


@pytest.mark.parametrize("line", UNCHANGED)
def test_lines_without_secrets_are_unchanged(line: str) -> None:
    assert mask_secrets(line) == line


def test_many_secrets_on_consecutive_lines_and_no_spill_across_lines() -> None:
    config = ("user-interface con 0\n"
              " authentication-mode password\n"
              " set authentication password cipher $1a$abc$def$\n"
              "line vty 0 4\n"
              " password\n"
              " login\n")
    masked = mask_secrets(config)
    assert masked == ("user-interface con 0\n"
                      " authentication-mode password\n"
                      " set authentication password cipher ******\n"
                      "line vty 0 4\n"
                      " password\n"
                      " login\n")


def test_private_key_blocks_are_masked_but_certificates_are_not() -> None:
    masked = mask_secrets(PEM)
    assert "MIIEowIBAAKCAQEAu6Yk" not in masked and "b3BlbnNzaC1rZXkt" not in masked
    assert "-----BEGIN RSA PRIVATE KEY-----\n******\n-----END RSA PRIVATE KEY-----" in masked
    assert "-----BEGIN OPENSSH PRIVATE KEY-----\n******\n-----END OPENSSH PRIVATE KEY-----" in masked
    assert "MIIBszCCAVmgAwIBAgIUJ1" in masked  # a certificate is public
    assert masked.startswith("crypto pki import\n")
    assert mask_secrets(masked) == masked


def test_a_truncated_private_key_is_masked_to_the_end() -> None:
    text = "x\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nMIIEvQIB\n"
    assert mask_secrets(text) == "x\n-----BEGIN PRIVATE KEY-----\n******"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_fake_devices_configurations_lose_every_secret(platform: str) -> None:
    config = PLATFORMS[platform].responses["display current-configuration"].format(hostname="HB-130000")
    masked = mask_secrets(config)
    secrets = ["%^%#", "$1c$", "$1a$", "$c$3$", "$h$6$", "Auth-Key-2026", "Priv-Key-2026", "securityname public"]
    assert [s for s in secrets if s in masked] == []
    assert masked.count(MASK) >= 5
    assert len(masked.splitlines()) == len(config.splitlines())
    # only the secret lines changed
    changed = [(a, b) for a, b in zip(config.splitlines(), masked.splitlines(), strict=True) if a != b]
    assert all(MASK in b for _a, b in changed)
    assert " sysname HB-130000" in masked
    assert "interface Vlanif100" in masked or "interface Vlan-interface100" in masked


def test_masking_applies_to_an_existing_unified_diff() -> None:
    diff = ("--- old\n+++ new\n@@ -1,2 +1,2 @@\n"
            "- snmp-agent community read cipher %^%#old%^%#\n"
            "+ snmp-agent community read cipher %^%#new%^%#\n"
            "-root:$6$a$b:19700:0:99999:7:::\n"
            "+root:$6$c$d:19701:0:99999:7:::\n")
    masked = mask_secrets(diff)
    assert "%^%#" not in masked and "$6$" not in masked
    assert "- snmp-agent community read cipher ******\n" in masked
    assert "+root:******:19701:0:99999:7:::" in masked


def test_config_diff_masks_both_sides() -> None:
    old = (" sysname HB-130000\n snmp-agent community read cipher %^%#OLD-secret%^%#\n"
           " ntp-service unicast-server 10.1.1.1\n")
    new = (" sysname HB-130000\n snmp-agent community read cipher %^%#NEW-secret%^%#\n"
           " ntp-service unicast-server 10.1.1.2\n")
    diff = config_diff(old, new, fromfile="2026-05-08", tofile="2026-05-09")
    assert "OLD-secret" not in diff and "NEW-secret" not in diff
    assert diff.startswith("--- 2026-05-08\n+++ 2026-05-09\n@@ ")
    assert "- ntp-service unicast-server 10.1.1.1\n+ ntp-service unicast-server 10.1.1.2\n" in diff
    # the secret line is identical once masked: context, not change
    assert "  snmp-agent community read cipher ******\n" in diff


def test_config_diff_is_empty_when_only_secrets_or_line_endings_changed() -> None:
    old = "enable secret 5 $1$aaaa$bbbb\r\nhostname core-1\r\n"
    new = "enable secret 5 $1$cccc$dddd\nhostname core-1\n"
    assert config_diff(old, new) == ""
    assert config_diff("", "") == ""


def test_config_diff_of_added_lines_and_missing_final_newline() -> None:
    diff = config_diff("a\nb", "a\nb\nusername x password 0 Plain-Text")
    assert diff.endswith("+username x password 0 ******\n")
    assert "Plain-Text" not in diff


text_with_secrets = st.lists(
    st.one_of(
        st.sampled_from([c[0] for c in CASES] + UNCHANGED + PEM.splitlines()),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
    max_size=12,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(text_with_secrets)
def test_masking_is_idempotent_and_never_raises(text: str) -> None:
    once = mask_secrets(text)
    assert mask_secrets(once) == once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CASES), min_size=1, max_size=8))
def test_masked_secret_lines_never_leak_in_a_mix(cases: list[tuple[str, str]]) -> None:
    text = "\n".join(line for line, _masked in cases)
    assert mask_secrets(text) == "\n".join(masked for _line, masked in cases)


# ------------------------------------------------------------------------------------------------------------
# The adapter's plain data (no network)
# ------------------------------------------------------------------------------------------------------------

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMNTl1vo9SfQ3reLDUSQejRJ8N3B7/ofq6PIZ+BRIauI"


def test_target_hides_the_password_and_validates() -> None:
    target = SshTarget("10.1.2.3", username="ops", password="S3cret-Pw", platform="huawei", name="hb-core-1",
                       known_host_key=ED25519)
    assert "S3cret-Pw" not in repr(target)
    assert target.label == "10.1.2.3:22 (hb-core-1)"
    assert SshTarget("fd00::1", port=2222, username="u", key_file="/k", platform="linux").label == "[fd00::1]:2222"
    with pytest.raises(ValidationFailed):
        SshTarget("10.1.2.3", username="ops", platform="huawei")  # neither password nor key
    with pytest.raises(ValidationFailed):
        SshTarget("10.1.2.3", port=0, username="ops", password="x", platform="huawei")
    for bad in ("ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-dss AAAAB3NzaC1kc3M=",
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMNTl1vo9SfQ3reLDUSQejRJ8N3B7/ofq6PIZ+BRIauI"):
        with pytest.raises(ValidationFailed):
            SshTarget("10.1.2.3", username="ops", password="x", platform="huawei", known_host_key=bad)


def test_fingerprint_is_sha256_of_the_key_blob_like_ssh_keygen() -> None:
    # ssh-keygen -lf on a file holding ED25519 prints this fingerprint
    assert host_key_fingerprint(ED25519) == "SHA256:P6HR9vA7fGswSgaG6eIVK0WZxQrsq1qmXPWejMJwxbM"
    assert host_key_fingerprint(ED25519 + " comment") == host_key_fingerprint(ED25519)


def test_platform_commands_cover_the_network_and_are_read_only() -> None:
    assert set(PLATFORM_COMMANDS) == {"linux", "huawei", "hp_comware", "cisco_ios", "ruijie_os"}
    for platform, cmds in PLATFORM_COMMANDS.items():
        assert len(cmds.checks) == 2 and cmds.config, platform
        assert cmds.all() == [*cmds.checks, cmds.config]
        prefix = {"linux": "", "huawei": "display ", "hp_comware": "display "}.get(platform, "show ")
        assert all(c.startswith(prefix) for c in cmds.all()), platform
