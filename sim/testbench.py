"""The whole-NIC testbench: clock, reset, root complex, endpoint model, driver."""

import gc
import json
import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_steps, get_sim_time
from cocotbext.pcie.core import RootComplex

from host.driver import PtlNic
from rtl.config import NicConfig
from .pcie import LinkKnobs, PtlnicDevice
from .transport import CocotbPcieTransport

__all__ = ["NicTestbench", "load_config", "CLOCK_NS"]

#: Core clock period in the simulations (250 MHz).
CLOCK_NS = 4


def load_config():
    """The ``NicConfig`` the running model was built with (passed by ``sim.run``)."""
    raw = os.environ.get("PTLNIC_CONFIG")
    return NicConfig(**json.loads(raw)) if raw else NicConfig()


class NicTestbench:
    """Owns the clock, reset, the root complex and the NIC's endpoint model.

    ``await tb.start()`` resets the NIC, enumerates the bus and opens the
    driver (``tb.nic``). MPS and MRRS are programmed by the root complex as a
    host would: 128 << ``mps`` and 128 << ``mrrs`` bytes.
    """

    def __init__(self, dut, knobs=None, *, mps=1, mrrs=2, rcb=64):
        self.dut = dut
        self.config = load_config()
        self.log = logging.getLogger("cocotb.ptlnic.tb")
        # cocotbext-pcie logs every config access and TLP at INFO.
        logging.getLogger("cocotb.pcie").setLevel(os.environ.get("PTLNIC_PCIE_LOG", "ERROR"))
        self.period = get_sim_steps(CLOCK_NS, "ns")
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, "ns").start())
        self.rc = RootComplex()
        self.rc.max_payload_size = mps
        self.rc.max_read_request_size = mrrs
        self.rc.read_completion_boundary = rcb == 128
        knobs = knobs or LinkKnobs(rcb=rcb)
        self.dev = PtlnicDevice(dut, dut.clk, self.period, self.config, knobs)
        self.dev.host_memory = self.rc.mem_address_space
        self.rc.make_port().connect(self.dev)
        self.transport = CocotbPcieTransport(self.rc)
        self.nic = None

    @property
    def knobs(self):
        return self.dev.knobs

    def cycle(self):
        return get_sim_time("step") // self.period

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def start(self):
        await self.reset()
        await self.rc.enumerate()
        self.nic = await PtlNic.open(self.transport)
        # The set-up objects live for the whole run; keep the collector off them
        # and make it run less often (the per-cycle models allocate a lot).
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        return self.nic

    def check_protocol(self):
        errors = self.dev.protocol_errors
        assert not errors, f"{len(errors)} PCIe protocol violations by the NIC, first: {errors[0]}"
