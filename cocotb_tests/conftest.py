"""pytest glue: the cocotb testbenches run in Verilator processes started by
``sim.run.run_cocotb``; each test module here has pytest entry points that
start them, parametrised over NIC configurations."""

import os
import random

import pytest

from rtl.config import LARGE, NicConfig  # noqa: F401  (LARGE: for the test modules)

#: The datapath widths every whole-NIC testbench runs at.
WIDTHS = (64, 256)


def config_for(width, **kw):
    return NicConfig(data_width=width, **kw)



@pytest.fixture
def seed():
    """A seed for randomised tests: PTLNIC_SEED if set, else a fresh one; printed."""
    s = int(os.environ.get("PTLNIC_SEED", random.randrange(1 << 31)))
    print(f"seed: {s}  (rerun with PTLNIC_SEED={s})")
    return s
