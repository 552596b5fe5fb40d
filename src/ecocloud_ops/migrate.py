"""``db upgrade``: Alembic migrations, then the default of every policy that is missing."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .audit.service import ensure_head
from .bootstrap import Container
from .policies.service import seed_defaults


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("ecocloud_ops") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(container: Container) -> list[str]:
    """Bring the schema to head and seed missing policy defaults; returns the policies seeded."""
    cfg = alembic_config(container.settings.effective_database_url)
    with container.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with container.unit_of_work() as svc:
        ensure_head(svc.session)
        from .servicedesk.sla_store import seed_calendar

        seed_calendar(svc.session)
        return seed_defaults(svc.session)


def current_revision(container: Container) -> str | None:
    with container.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(container: Container) -> str | None:
    cfg = alembic_config(container.settings.effective_database_url)
    return ScriptDirectory.from_config(cfg).get_current_head()


def require_current_schema(container: Container) -> None:
    """Refuse to serve or work on a database that is not at the code's schema revision."""
    from .errors import ConfigError

    current, head = current_revision(container), head_revision(container)
    if current != head:
        raise ConfigError(f"the database is at schema revision {current or 'none'}, this version needs {head}: "
                          "run 'ecocloud-ops db upgrade'")
