from pathlib import Path

import pytest

from ecocloud_ops.config import load_settings
from ecocloud_ops.errors import ConfigError


def test_defaults_without_file_or_environment() -> None:
    s = load_settings(environ={})
    assert s.port == 8080 and s.host == "127.0.0.1" and s.language == "zh_CN"
    assert s.effective_database_url.startswith("sqlite:///") and s.effective_database_url.endswith("ecocloud.db")


def test_file_then_environment_then_explicit(tmp_path: Path) -> None:
    f = tmp_path / "ecocloud.toml"
    f.write_text('port = 9000\nhost = "0.0.0.0"\nlanguage = "en"\n')
    s = load_settings(f, environ={"ECOCLOUD_PORT": "9100"})
    assert (s.port, s.host, s.language) == (9100, "0.0.0.0", "en")
    s = load_settings(f, environ={"ECOCLOUD_PORT": "9100"}, port=9200)
    assert s.port == 9200
    s = load_settings(environ={"ECOCLOUD_CONFIG": str(f)})
    assert s.port == 9000


def test_bad_value_names_the_setting_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'port' \(from environment ECOCLOUD_PORT\)"):
        load_settings(environ={"ECOCLOUD_PORT": "70000"})
    f = tmp_path / "c.toml"
    f.write_text('language = "fr"\n')
    with pytest.raises(ConfigError, match=r"'language' \(from .*c.toml\)"):
        load_settings(f, environ={})
    with pytest.raises(ConfigError, match="database_url"):
        load_settings(environ={"ECOCLOUD_DATABASE_URL": "mysql://x"})


def test_unknown_setting_and_broken_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ECOCLOUD_PROT"):
        load_settings(environ={"ECOCLOUD_PROT": "1"})
    f = tmp_path / "c.toml"
    f.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(f, environ={})
    f.write_text("colour = 1\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(f, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_postgresql_url_gets_the_psycopg_driver() -> None:
    s = load_settings(environ={"ECOCLOUD_DATABASE_URL": "postgresql://u@h/db"})
    assert s.database_url == "postgresql+psycopg://u@h/db"
