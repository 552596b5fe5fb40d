"""Gunicorn entry point of every HTTP service of the OpenStack lab (runs in the lab's own venv).

``ECOLAB_WSGI_APP`` names the service's WSGI module (e.g. ``glance.wsgi.api``). oslo.config parses
``sys.argv`` while the service builds its configuration: under gunicorn that is gunicorn's command line,
which the service rejects, and the worker crash-loops. So the arguments go first, replaced by
``ECOLAB_WSGI_ARGV`` when set (shell words, e.g. ``--config-file /path/cinder.conf``: cinder's WSGI application
finds its configuration on its command line only). Then the lab's SQLite settings (see ``ecolab_sqlite``).
"""

import importlib
import os
import shlex
import sys

sys.argv = sys.argv[:1] + shlex.split(os.environ.get("ECOLAB_WSGI_ARGV", ""))

application = importlib.import_module(os.environ["ECOLAB_WSGI_APP"]).application

# isort: split
import ecolab_sqlite  # noqa: E402  (after the service, which may monkey-patch first)

ecolab_sqlite.install()

__all__ = ["application"]
