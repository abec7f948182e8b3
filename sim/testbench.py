"""Whole-NIC testbenches: clock, reset, root complexes, endpoint models,
drivers; for one NIC (top ``ptlnic``) or two NICs joined by a link (top
``ptlnic_pair``)."""

import gc
import json
import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotb.utils import get_sim_steps, get_sim_time
from cocotbext.pcie.core import RootComplex

from host.driver import PtlNic
from rtl.config import NicConfig
from .pcie import LinkKnobs, PtlnicDevice
from .transport import CocotbPcieTransport
from .wire import WireCapture, WireInjector

__all__ = ["NicTestbench", "PairTestbench", "HostSide", "load_config", "check_rules", "CLOCK_NS"]

#: Core clock period in the simulations (250 MHz).
CLOCK_NS = 4


def load_config():
    """The ``NicConfig`` the running model was built with (passed by ``sim.run``)."""
    raw = os.environ.get("PTLNIC_CONFIG")
    return NicConfig(**json.loads(raw)) if raw else NicConfig()


async def check_rules(nic, who):
    """The rules the NIC counts itself: no DMA write status ever waited for
    its client (a client that waits for anything else first can deadlock the
    shared write engine)."""
    waits = await nic.read("DMA_WR_STATUS_WAITS")
    assert waits == 0, f"{who}: DMA write statuses waited {waits} cycles for their clients (deadlock rule)"


class HostSide:
    """One host: a root complex, the NIC's PCIe endpoint model on it, the driver.

    MPS and MRRS are programmed by the root complex as a host would: 128 << mps
    and 128 << mrrs bytes."""

    def __init__(self, dut, config, period, knobs=None, *, prefix="", mps=1, mrrs=2, rcb=64):
        self.rc = RootComplex()
        self.rc.max_payload_size = mps
        self.rc.max_read_request_size = mrrs
        self.rc.read_completion_boundary = rcb == 128
        knobs = knobs or LinkKnobs(rcb=rcb)
        self.dev = PtlnicDevice(dut, dut.clk, period, config, knobs, prefix=prefix)
        self.dev.host_memory = self.rc.mem_address_space
        self.rc_port = self.rc.make_port()
        self.rc_port.connect(self.dev)
        self.transport = CocotbPcieTransport(self.rc)
        self.nic = None

    @property
    def knobs(self):
        return self.dev.knobs

    async def start(self):
        await self.rc.enumerate()
        self.nic = await PtlNic.open(self.transport)
        return self.nic


class _Bench:
    def __init__(self, dut):
        self.dut = dut
        self.config = load_config()
        self.log = logging.getLogger("cocotb.ptlnic.tb")
        # cocotbext-pcie logs every config access and TLP at INFO.
        logging.getLogger("cocotb.pcie").setLevel(os.environ.get("PTLNIC_PCIE_LOG", "ERROR"))
        self.period = get_sim_steps(CLOCK_NS, "ns")
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, "ns").start())

    def cycle(self):
        return get_sim_time("step") // self.period

    async def wait_cycles(self, n):
        """Let ``n`` cycles pass without waking Python on each of them."""
        await Timer(n * CLOCK_NS, "ns")

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    @staticmethod
    def _settle():
        # The set-up objects live for the whole run; keep the collector off them
        # and make it run less often (the per-cycle models allocate a lot).
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)


class NicTestbench(_Bench):
    """One NIC on one host. ``await tb.start()`` resets the NIC, enumerates the
    bus and opens the driver (``tb.nic``). The Ethernet port is left idle."""

    def __init__(self, dut, knobs=None, *, mps=1, mrrs=2, rcb=64):
        super().__init__(dut)
        dut.i_eth__valid.value = 0
        dut.o_eth__ready.value = 1
        self.host = HostSide(dut, self.config, self.period, knobs, mps=mps, mrrs=mrrs, rcb=rcb)
        self.rc, self.dev, self.transport = self.host.rc, self.host.dev, self.host.transport
        self.nic = None

    @property
    def knobs(self):
        return self.dev.knobs

    async def start(self):
        await self.reset()
        self.nic = await self.host.start()
        self._settle()
        return self.nic

    async def check_protocol(self):
        """No PCIe protocol violation by the NIC, and the NIC's own rules held."""
        self.dev.check_bridge()
        errors = self.dev.protocol_errors
        assert not errors, f"{len(errors)} PCIe protocol violations by the NIC, first: {errors[0]}"
        await check_rules(self.nic, "the NIC")


class PairTestbench(_Bench):
    """Two NICs, ``a`` and ``b``, each on its own host, joined by a link
    (or each looped back to itself). ``tb.inject[n]`` puts frames of a test's
    making on the wire into NIC ``n``; ``capture=path`` writes the frames that
    cross the link to a pcap file."""

    def __init__(self, dut, knobs=None, *, loopback=False, capture=None, mps=1, mrrs=2):
        super().__init__(dut)
        dut.loopback.value = int(loopback)
        self.hosts = {n: HostSide(dut, self.config, self.period, knobs and knobs.get(n), prefix=f"{n}_",
                                  mps=mps, mrrs=mrrs) for n in ("a", "b")}
        self.a, self.b = self.hosts["a"], self.hosts["b"]
        self.inject = {n: WireInjector(dut, n, self.config.data_width) for n in ("a", "b")}
        self.capture = WireCapture(dut, capture, self.config.data_width, CLOCK_NS) if capture else None

    async def start(self):
        await self.reset()
        for h in self.hosts.values():
            await h.start()
        self._settle()
        return self.a.nic, self.b.nic

    async def check_protocol(self):
        """No PCIe protocol violation by either NIC, and the NICs' own rules held."""
        for n, h in self.hosts.items():
            h.dev.check_bridge()
            errors = h.dev.protocol_errors
            assert not errors, f"NIC {n}: {len(errors)} PCIe protocol violations, first: {errors[0]}"
            await check_rules(h.nic, f"NIC {n}")
