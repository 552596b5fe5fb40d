"""Fixtures of the lab suites: the disaster-recovery lab, started once per session."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ecocloud_ops.lab.drlab import DRLab

#: unique name: a demo or a drill may run a DR lab with the default name at the same time
DRLAB_NAME = "ecodrtest"


@pytest.fixture(scope="session")
def drlab() -> Iterator[DRLab]:
    """The DR lab (production primary, DR standby, copy host) for the whole session; stopped at the end.

    Tests bring it back to its initial state with ``drlab.reset()`` before they use it."""
    DRLab.cleanup_stale(DRLAB_NAME)
    lab = DRLab(DRLAB_NAME)
    t0 = time.monotonic()
    lab.start()
    print(f"\n[drlab] started in {time.monotonic() - t0:.1f} s on {lab.network}")
    try:
        yield lab
    finally:
        lab.stop()
