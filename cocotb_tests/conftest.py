"""pytest glue: the cocotb testbenches run in Verilator processes started by
``sim.run.run_cocotb``; each test module here has pytest entry points that
start them, parametrised over NIC configurations."""

import os
import random

import pytest

from rtl.config import NicConfig

#: The datapath widths every whole-NIC testbench runs at.
WIDTHS = (64, 256)


def config_for(width, **kw):
    return NicConfig(data_width=width, **kw)


#: The large build: 256 transmit and 256 receive queues, 256 completion queues
#: (descriptor caches of 8, so that they fit the block RAM of an LFE5U-85F;
#: 768 doorbell pages need a 4 MiB BAR0).
LARGE = dict(num_queues=256, num_cqs=256, desc_cache=8, bar0_size=1 << 22)


@pytest.fixture
def seed():
    """A seed for randomised tests: PTLNIC_SEED if set, else a fresh one; printed."""
    s = int(os.environ.get("PTLNIC_SEED", random.randrange(1 << 31)))
    print(f"seed: {s}  (rerun with PTLNIC_SEED={s})")
    return s
