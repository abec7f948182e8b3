"""DMA engines through the self-test client: transfers of every size and
alignment under completion splitting, reordering, latency and back-pressure,
the request-splitting rules, tags in flight, every read fault, bus mastering,
argument checks, 64-bit addresses, MSI and soft reset during traffic.

Host memory is the reference: data goes host -> NIC memory -> host and must come
back byte for byte, with guard bytes around every destination untouched."""

import os
import random

import cocotb
import pytest
from cocotb.triggers import ClockCycles
from cocotbext.axi.address_space import MemoryRegion
from cocotbext.pcie.core.caps import PciCapId

from rtl.pcie.tlp import FMT_TYPE_MRD32, FMT_TYPE_MRD64, FMT_TYPE_MWR32, FMT_TYPE_MWR64
from rtl.regmap import DmaStatus
from sim.pcie import LinkKnobs, _length_dw, _req_addr
from sim.testbench import NicTestbench

GUARD = 0x5A


def _seed():
    return int(os.environ.get("PTLNIC_SEED", "1"))


class Host:
    """Two large host buffers and the round-trip check."""

    def __init__(self, tb, size=1 << 18):
        self.tb = tb
        self.src = tb.transport.alloc_dma(size)
        self.dst = tb.transport.alloc_dma(size)

    async def roundtrip(self, length, src_off, dst_off, nic_addr=0, rng=None):
        nic = self.tb.nic
        rng = rng or random.Random(length)
        data = rng.randbytes(length)
        self.src.write(src_off, data)
        lo, hi = max(0, dst_off - 64), min(self.dst.size, dst_off + length + 64)
        self.dst.write(lo, bytes([GUARD]) * (hi - lo))
        rd = await nic.dma_run(write=False, host_addr=self.src.addr + src_off, length=length, nic_addr=nic_addr,
                               irq=True, timeout_ns=10_000_000)
        assert rd.ok, f"DMA read of {length} B at +{src_off}: {rd}"
        wr = await nic.dma_run(write=True, host_addr=self.dst.addr + dst_off, length=length, nic_addr=nic_addr,
                               irq=True, timeout_ns=10_000_000)
        assert wr.ok, f"DMA write of {length} B at +{dst_off}: {wr}"
        back = self.dst.read(dst_off, length)
        if back != data:
            bad = next(i for i in range(length) if back[i] != data[i])
            raise AssertionError(f"{length} B from +{src_off} to +{dst_off} via NIC {nic_addr:#x}: byte {bad} "
                                 f"is {back[bad]:#04x}, expected {data[bad]:#04x}")
        assert self.dst.read(lo, dst_off - lo) == bytes([GUARD]) * (dst_off - lo), "DMA wrote below its buffer"
        assert self.dst.read(dst_off + length, hi - dst_off - length) == bytes([GUARD]) * (hi - dst_off - length), \
            "DMA wrote past its buffer"
        return rd, wr


def _random_length(rng, limit):
    r = rng.random()
    if r < 0.35:
        return rng.randint(1, 256)
    if r < 0.7:
        return rng.randint(257, 8192)
    return rng.randint(8193, limit)


@cocotb.test()
async def random_transfers_survive_splitting_reordering_latency_and_backpressure(dut):
    seed = _seed()
    rng = random.Random(seed)
    dut._log.info("seed %d", seed)
    tb = NicTestbench(dut, LinkKnobs(seed=seed))
    await tb.start()
    host = Host(tb)
    mem = tb.config.dma_test_mem
    bb = tb.config.beat_bytes
    total = 0
    n = int(os.environ.get("PTLNIC_DMA_TRANSFERS", "40"))
    for i in range(n):
        k = tb.knobs
        k.split = rng.choice(("max", "rcb", "random"))
        k.reorder = rng.random() < 0.6
        k.read_latency = rng.choice((0, 0, 7, 60, 250))
        k.tx_pause = rng.choice((0.0, 0.0, 0.2, 0.5))
        k.rx_gap = rng.choice((0.0, 0.0, 0.2))
        length = _random_length(rng, 65536)
        src_off = rng.randrange(4096) if rng.random() < 0.8 else rng.randrange(4)
        dst_off = rng.randrange(4096) if rng.random() < 0.8 else rng.randrange(4)
        nic_addr = rng.randrange(0, mem - length + 1, bb) if length <= mem else 0
        nic_addr -= nic_addr % bb
        dut._log.info("transfer %d: %d B, host +%d -> NIC %#x -> host +%d; %s", i, length, src_off, nic_addr,
                      dst_off, {a: getattr(k, a) for a in ("split", "reorder", "read_latency", "tx_pause", "rx_gap")})
        await host.roundtrip(length, src_off, dst_off, nic_addr, rng)
        total += length
        if i % 10 == 9:
            dut._log.info("%d transfers, %d bytes so far", i + 1, total)
    # Boundary lengths at every alignment within a DWORD and around a beat.
    for length in (1, 2, 3, 4, 5, bb - 1, bb, bb + 1, 4095, 4096, 4097, 65536):
        for off in (0, 1, 2, 3, 4096 - 1):
            await host.roundtrip(length, off, (off * 7 + 3) % 4096, 0, rng)
    await tb.check_protocol()
    c = await tb.nic.counters()
    errors = {k: v for k, v in c.items() if k.startswith("ERR_") and v}
    assert not errors, errors


@cocotb.test()
async def requests_follow_mrrs_mps_and_keep_every_tag_in_flight(dut):
    tb = NicTestbench(dut, LinkKnobs(read_latency=600))
    await tb.start()
    host = Host(tb)
    reads, writes, in_flight = [], [], []

    def observe(ft, hdr, payload):
        if ft in (FMT_TYPE_MRD32, FMT_TYPE_MRD64):
            reads.append((_req_addr(hdr), _length_dw(hdr)))
            in_flight.append(len(tb.dev._outstanding) + 1)
        elif ft in (FMT_TYPE_MWR32, FMT_TYPE_MWR64) and _req_addr(hdr) != tb.dev.fn.msi_cap.msi_message_address:
            writes.append((_req_addr(hdr), _length_dw(hdr)))
    tb.dev.tx_observers.append(observe)

    await host.roundtrip(65536, 100, 200)
    mrrs, mps = tb.dev.mrrs, tb.dev.mps
    assert max(n for _, n in reads) * 4 <= mrrs and max(n for _, n in writes) * 4 <= mps
    assert max(in_flight) == tb.config.dma_tags, f"at most {max(in_flight)} reads in flight"
    for addr, n in reads + writes:
        assert (addr & 0xFFF) + 4 * n <= 0x1000, f"request at {addr:#x} of {n} DW crosses 4 KiB"
    # Requests are cut at MRRS/MPS boundaries: all but the first are aligned.
    assert all(a % mrrs == 0 for a, _ in reads[1:]), "reads not cut on MRRS boundaries"
    assert all(a % mps == 0 for a, _ in writes[1:]), "writes not cut on MPS boundaries"

    # Lower MRRS and MPS to 128 bytes in the device control register.
    fn = tb.dev.fn
    ctrl = await tb.transport.dev.capability_read_word(PciCapId.EXP, 8)
    await tb.transport.dev.capability_write_word(PciCapId.EXP, 8, ctrl & ~((7 << 5) | (7 << 12)))
    assert tb.dev.mrrs == 128 and tb.dev.mps == 128, (fn.pcie_cap.max_read_request_size, fn.pcie_cap.max_payload_size)
    reads.clear()
    writes.clear()
    tb.knobs.read_latency = 0
    await host.roundtrip(5000, 3, 5)
    assert max(n for _, n in reads) * 4 == 128 and max(n for _, n in writes) * 4 == 128
    await tb.check_protocol()


@cocotb.test()
async def back_to_back_runs_keep_the_datapath_busy(dut):
    """Cycle counts, not wall time: a run of 4 KiB operations behind 250 cycles
    of read latency must keep most of the datapath busy (the benchmark measures
    the exact figures)."""
    tb = NicTestbench(dut, LinkKnobs(read_latency=250))
    nic = await tb.start()
    buf = tb.transport.alloc_dma(1 << 18)
    bb = tb.config.beat_bytes
    for write, floor in ((False, 0.85), (True, 0.9)):
        run = await nic.dma_run(write=write, host_addr=buf.addr, length=4096, count=48, stride=4096, irq=True,
                                timeout_ns=100_000_000)
        assert run.ok, run
        fraction = run.bytes / run.cycles / bb
        dut._log.info("%s: %d bytes in %d cycles, %.1f%% of the datapath", "write" if write else "read",
                      run.bytes, run.cycles, 100 * fraction)
        assert fraction >= floor, f"{'write' if write else 'read'} ran at {100 * fraction:.1f}% of the datapath"
    await tb.check_protocol()


FAULTS = {
    "ur": (DmaStatus.UR, {"ERR_CPL_UR": 1}),
    "ca": (DmaStatus.CA, {"ERR_CPL_CA": 1}),
    "drop": (DmaStatus.TIMEOUT, {"ERR_CPL_TIMEOUT": 1}),
    "bad_tag": (DmaStatus.TIMEOUT, {"ERR_CPL_TIMEOUT": 1}),
    "bad_len": (DmaStatus.BAD_CPL, {"ERR_CPL_BAD_LEN": 1}),
    "poison": (DmaStatus.POISONED, {"ERR_CPL_POISONED": 1, "ERR_CPL_BAD_TAG": 0, "ERR_CPL_TIMEOUT": 0}),
}


@cocotb.test()
async def every_read_fault_ends_only_its_request_and_is_counted(dut):
    tb = NicTestbench(dut, LinkKnobs(read_latency=20, reorder=True, split="rcb"))
    nic = await tb.start()
    host = Host(tb)
    await nic.write("DMA_CPL_TIMEOUT", 3000)
    op_len, stride, count = 2048, 8192, 4
    data = random.Random(_seed()).randbytes(stride * count)
    host.src.write(0, data)
    for fault, (status, counters) in FAULTS.items():
        target = host.src.addr + 2 * stride + 512     # the second request of the third operation
        hits = []

        def hook(req, fault=fault, target=target):
            if req["addr"] == target and not hits:
                hits.append(req)
                return fault
            return None
        tb.knobs.fault = hook
        await nic.clear_counters()
        run = await nic.dma_run(write=False, host_addr=host.src.addr, length=op_len, count=count, stride=stride)
        assert hits, f"{fault}: the fault was never injected"
        assert run.done == count and run.errors == 1 and run.first_error == status, f"{fault}: {run}"
        c = await nic.counters()
        for name, n in counters.items():
            assert c[name] == n, f"{fault}: {name} is {c[name]}, expected {n}"
        if fault == "bad_tag":
            assert c["ERR_CPL_BAD_TAG"] >= 1, c
        assert c["DMA_RD_OPS"] == count, c
        # The engine keeps serving: a clean transfer right after.
        tb.knobs.fault = None
        await host.roundtrip(3000, 1, 2)
        dut._log.info("%s: %s, counters %s", fault, run.first_error.name, {k: v for k, v in c.items() if v})
    await tb.check_protocol()


@cocotb.test()
async def refused_operations_report_why(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    host = Host(tb)
    mem = tb.config.dma_test_mem
    for kw in (dict(nic_addr=1), dict(nic_addr=mem - 64, length=65), dict(count=0)):
        args = dict(write=False, host_addr=host.src.addr, length=64, nic_addr=0, count=1)
        args.update(kw)
        run = await nic.dma_run(**args)
        assert run.first_error == DmaStatus.BAD_ARGS and run.done == 0, (kw, run)
    for write in (False, True):
        run = await nic.dma_run(write=write, host_addr=host.src.addr, length=0)
        assert run.first_error == DmaStatus.ZERO_LENGTH and run.done == 1, run
    c = await nic.counters()
    assert c["ERR_DMA_ZERO_LEN"] == 2, c
    # Bus mastering off: no request leaves the NIC, both directions fail.
    await tb.transport.dev.clear_master()
    for write in (False, True):
        run = await nic.dma_run(write=write, host_addr=host.src.addr, length=3000, count=2, stride=4096)
        assert run.first_error == DmaStatus.BUS_MASTER and run.errors == 2 and run.done == 2, run
    # (A request sent with bus mastering off would be a protocol violation.)
    c = await nic.counters()
    assert c["ERR_DMA_BUS_MASTER"] == 4 and c["DMA_RD_TLPS"] == 0 and c["DMA_WR_TLPS"] == 0, c
    await tb.transport.dev.set_master()
    await host.roundtrip(100, 0, 0)
    await tb.check_protocol()


@cocotb.test()
async def dma_above_4_gib_uses_64_bit_headers(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    high = 0x0001_2345_0000_0000
    region = MemoryRegion(1 << 16)
    tb.rc.mem_address_space.register_region(region, high)
    fmts = []
    tb.dev.tx_observers.append(lambda ft, hdr, p: fmts.append(ft) if ft in (FMT_TYPE_MRD64, FMT_TYPE_MWR64,
                                                                         FMT_TYPE_MRD32, FMT_TYPE_MWR32) else None)
    data = random.Random(_seed()).randbytes(5000)
    region[0x10:0x10 + len(data)] = data
    run = await nic.dma_run(write=False, host_addr=high + 0x10, length=len(data))
    assert run.ok, run
    run = await nic.dma_run(write=True, host_addr=high + 0x8003, length=len(data))
    assert run.ok, run
    assert bytes(region[0x8003:0x8003 + len(data)]) == data
    assert set(fmts) == {FMT_TYPE_MRD64, FMT_TYPE_MWR64}, fmts
    await tb.check_protocol()


@cocotb.test()
async def msi_fires_on_completion_and_trigger_and_is_counted_when_blocked(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    host = Host(tb)
    t = tb.transport
    # Interrupts disabled: requests are counted as blocked, none is sent.
    await nic.enable_irqs(False)
    await nic.clear_counters()
    await nic.write_fields("MSI_TRIGGER", VECTOR=1)
    await ClockCycles(dut.clk, 20)
    assert t.irq_count(1) == 0
    assert (await nic.counters())["MSI_BLOCKED"] == 1
    await nic.enable_irqs()
    for v in range(t.nvec):
        before = t.irq_count(v)
        await nic.write_fields("MSI_TRIGGER", VECTOR=v)
        assert await t.wait_irq(v, timeout_ns=2000), f"no MSI on vector {v}"
        assert t.irq_count(v) == before + 1
    # A DMA run that asks for an interrupt when it ends.
    rd = await nic.dma_run(write=False, host_addr=host.src.addr, length=9000, irq=True, vector=2, timeout_ns=200_000)
    assert rd.ok, rd
    assert (await nic.counters())["MSI_SENT"] == t.nvec + 1
    await tb.check_protocol()


@cocotb.test()
async def soft_reset_during_traffic_drains_and_recovers(dut):
    tb = NicTestbench(dut, LinkKnobs(read_latency=300, tx_pause=0.5, seed=3))
    nic = await tb.start()
    host = Host(tb)
    for write, delay in ((False, 400), (True, 150), (True, 333)):
        await nic.write("DMA_TEST_HOST_ADDR", host.dst.addr if write else host.src.addr)
        await nic.write("DMA_TEST_LEN", 60000)
        await nic.write("DMA_TEST_COUNT", 4)
        await nic.write_fields("DMA_TEST_CTRL", START=1, WRITE=int(write))
        await ClockCycles(dut.clk, delay)
        assert (await nic.read_fields("DMA_TEST_STATUS"))["BUSY"] == 1
        await nic.soft_reset()
        status = await nic.read_fields("DMA_TEST_STATUS")
        assert status["BUSY"] == 0, status
        st = await nic.read_fields("STATUS")
        assert not st["DMA_RD_BUSY"] and not st["DMA_WR_BUSY"], st
        await ClockCycles(dut.clk, 1000)
    # Every TLP that left the NIC was whole (the protocol checker sees framing),
    # and the engines work again.
    tb.knobs.read_latency = 0
    await host.roundtrip(10000, 7, 9)
    await tb.check_protocol()


_CYCLES = {}


async def _dma_cycles(dut, beats):
    """NIC-counted cycles of a DMA read and a write run, with the PCIe model
    reaching the NIC beat by beat or through the simulation top's chunk bridge."""
    tb = NicTestbench(dut, LinkKnobs(read_latency=20, beats=beats))
    nic = await tb.start()
    buf = tb.transport.alloc_dma(1 << 16)
    cycles = []
    for write in (False, True):
        run = await nic.dma_run(write=write, host_addr=buf.addr + 3, length=5000, count=4, stride=8192, irq=True,
                                timeout_ns=10_000_000)
        assert run.ok, run
        cycles.append(run.cycles)
    await tb.check_protocol()
    return cycles


@cocotb.test()
async def dma_cycles_beat_by_beat(dut):
    _CYCLES["beats"] = await _dma_cycles(dut, True)


@cocotb.test()
async def dma_cycles_through_the_chunk_bridge_are_the_same(dut):
    """The chunk bridge gives the NIC the cycles of the beat-by-beat model (it
    only changes how often Python runs), so benchmarks through it measure the
    NIC, not the model."""
    got = await _dma_cycles(dut, False)
    assert got == _CYCLES["beats"], f"read/write cycles through the bridge {got}, beat by beat {_CYCLES['beats']}"


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import WIDTHS, config_for  # noqa: E402

CASES = ["random_transfers_survive_splitting_reordering_latency_and_backpressure",
         "requests_follow_mrrs_mps_and_keep_every_tag_in_flight",
         "every_read_fault_ends_only_its_request_and_is_counted",
         "refused_operations_report_why|dma_above_4_gib_uses_64_bit_headers"
         "|back_to_back_runs_keep_the_datapath_busy"
         "|msi_fires_on_completion_and_trigger_and_is_counted_when_blocked"
         "|soft_reset_during_traffic_drains_and_recovers",
         "dma_cycles_beat_by_beat|dma_cycles_through_the_chunk_bridge_are_the_same"]


def _case_id(case):
    return case.split("|")[0].split("_")[0] + ("-misc" if "|" in case else "")


# The random transfers run at every width; the directed cases at two.
PARAMS = [(w, c) for c in CASES for w in ((64, 128, 256) if c == CASES[0] else WIDTHS)]


@pytest.mark.parametrize("width, case", PARAMS, ids=[f"{w}-{_case_id(c)}" for w, c in PARAMS])
def test_dma(width, case, seed):
    run_cocotb("cocotb_tests.test_dma", config_for(width), testcase=case.split("|"),
               name=f"test_dma-w{width}-{_case_id(case)}", env={"PTLNIC_SEED": str(seed)})
