"""Gunicorn entry point of every HTTP service of the OpenStack lab (runs in the lab's own venv).

``ECOLAB_WSGI_APP`` names the service's WSGI module (e.g. ``glance.wsgi.api``). oslo.config parses
``sys.argv`` while the service builds its configuration: under gunicorn that is gunicorn's command line,
which the service rejects, and the worker crash-loops. So the arguments go first. Then the lab's SQLite
settings (see ``ecolab_sqlite``).
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]

application = importlib.import_module(os.environ["ECOLAB_WSGI_APP"]).application

# isort: split
import ecolab_sqlite  # noqa: E402  (after the service, which may monkey-patch first)

ecolab_sqlite.install()

__all__ = ["application"]
