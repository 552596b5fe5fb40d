from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.models import Base


def test_migrations_build_exactly_the_models(container: Container) -> None:
    with container.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # apscheduler_jobs is APScheduler's own table, created by our first migration.
    diff = [d for d in diff if "apscheduler_jobs" not in str(d)]
    assert diff == [], diff
