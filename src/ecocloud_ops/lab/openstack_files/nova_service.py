"""nova-conductor or nova-scheduler of the OpenStack lab: ``python nova_service.py conductor|scheduler <args>``.

The same as the console scripts, plus the lab's SQLite settings (see ``ecolab_sqlite``) once nova is imported
(its ``nova.cmd`` modules apply nova's monkey patching first).
"""

import importlib
import sys

if __name__ == "__main__":
    binary = sys.argv.pop(1)
    if binary not in ("conductor", "scheduler"):
        sys.exit(f"unknown nova service {binary!r}: conductor or scheduler")
    command = importlib.import_module(f"nova.cmd.{binary}")
    import ecolab_sqlite

    ecolab_sqlite.install()
    sys.argv[0] = f"nova-{binary}"
    sys.exit(command.main())
