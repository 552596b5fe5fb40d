"""Map cell0 and create cell1 in one process: ``python nova_cells.py <cell0 database URL> <nova-manage args>``.

Does what ``nova-manage cell_v2 map_cell0 --database_connection URL`` and ``nova-manage cell_v2 create_cell
--name cell1`` do (cell1 takes the transport URL and database from the config files), through the same
``CellV2Commands`` — one nova import (~4 s of CPU) instead of two.
"""

import sys

from nova import config, objects
from nova.cmd import manage

if __name__ == "__main__":
    cell0_url = sys.argv.pop(1)
    sys.argv[0] = "nova-manage"
    config.parse_args(sys.argv)
    objects.register_all()
    commands = manage.CellV2Commands()
    status = commands.map_cell0(database_connection=cell0_url) or commands.create_cell(name="cell1", verbose=True)
    sys.exit(status)
