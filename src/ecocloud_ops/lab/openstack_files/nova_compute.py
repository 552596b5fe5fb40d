"""nova-compute of the OpenStack lab: the fake virt driver with the capacity of one resource pool.

``FakeDriverWithoutFakeNodes`` reports a fixed 1000 vCPUs / 800000 MB / 600000 GB; the lab's pools have their own
sizes, given as ``ECOLAB_VCPUS``, ``ECOLAB_MEMORY_MB`` and ``ECOLAB_DISK_GB``. Arguments are nova-compute's.
"""

import os
import sys

from nova.cmd import compute  # first: it applies nova's monkey patching before anything else is imported
from nova.virt import fake

fake.FakeDriverWithoutFakeNodes.vcpus = int(os.environ["ECOLAB_VCPUS"])
fake.FakeDriverWithoutFakeNodes.memory_mb = int(os.environ["ECOLAB_MEMORY_MB"])
fake.FakeDriverWithoutFakeNodes.local_gb = int(os.environ["ECOLAB_DISK_GB"])

if __name__ == "__main__":
    sys.argv[0] = "nova-compute"
    sys.exit(compute.main())
