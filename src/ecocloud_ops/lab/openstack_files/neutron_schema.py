"""Create neutron's schema in a new SQLite database from its models: ``python neutron_schema.py <url>``.

Neutron's Alembic migrations fail on SQLite (ALTER TABLE); its models describe the same head schema. The caller
then runs ``neutron-db-manage stamp heads`` so the database is known to be current.
"""

import sys

from neutron.db.migration.models import head
from sqlalchemy import create_engine

engine = create_engine(sys.argv[1])
head.get_metadata().create_all(engine)
engine.dispose()
