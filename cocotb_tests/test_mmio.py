"""BAR0 MMIO: every access size and alignment, byte enables, unmapped and
read-only addresses, refused requests and soft reset, checked against a
plain-Python model of the register file built from ``rtl.regmap``."""

import os
import random

import cocotb
import pytest
from cocotb.triggers import ClockCycles
from cocotbext.pcie.core.tlp import Tlp, TlpType

from rtl.pcie.tlp import FMT_TYPE_CPL, CplStatus, hdr_get
from rtl.regmap import REGMAP, UNMAPPED_READ_VALUE, const_values, reset_values
from sim.testbench import NicTestbench

# Registers that have side effects when written or change on their own are
# left out of the random traffic (they have directed tests).
_VOLATILE = {"STATUS", "CYCLE_COUNT", "SOFT_RESET", "COUNTER_CLEAR", "MSI_TRIGGER", "DMA_TEST_CTRL"}


class RegFileModel:
    """What BAR0 should return, DWORD by DWORD, and the error counters it keeps."""

    def __init__(self, config):
        self.consts = const_values(config)
        self.values = dict(reset_values(config))
        self.values["CONTROL"] = REGMAP["CONTROL"].pack(IRQ_ENABLE=1)   # the driver enabled interrupts
        self.unmapped_rd = 0
        self.bad_wr = 0

    def read_dw(self, dw):
        """Expected DWORD at ``dw``, or None when it cannot be predicted."""
        hit = REGMAP.at_dword(dw)
        if hit is None:
            self.unmapped_rd += 1
            return UNMAPPED_READ_VALUE
        reg, half = hit
        if reg.access == "const":
            v = self.consts[reg.name]
        elif reg.access == "rw":
            v = self.values[reg.name]
        elif reg.access == "wo":
            v = 0
        elif reg.name == "ERR_MMIO_UNMAPPED_RD":
            v = self.unmapped_rd
        elif reg.name == "ERR_MMIO_BAD_WR":
            v = self.bad_wr
        elif reg.access == "counter":
            v = 0   # nothing else happens in these tests
        else:
            return None
        return (v >> (32 * half)) & 0xFFFF_FFFF

    def write_dw(self, dw, value, be):
        if not be:
            return
        hit = REGMAP.at_dword(dw)
        if hit is None or hit[0].access not in ("rw", "wo"):
            self.bad_wr += 1
            return
        reg, half = hit
        if reg.access == "rw":
            mask = sum(0xFF << (8 * b) for b in range(4) if be >> b & 1) << (32 * half)
            old = self.values[reg.name]
            self.values[reg.name] = (old & ~mask) | ((value << (32 * half)) & mask)

    # Byte-level access, split into DWORDs as the TLP carries them.
    def read(self, addr, size):
        """Expected bytes, with None for bytes that cannot be predicted."""
        out = []
        for dw in range(addr // 4, (addr + size - 1) // 4 + 1):
            v = self.read_dw(dw)
            for b in range(4):
                a = dw * 4 + b
                if addr <= a < addr + size:
                    out.append(None if v is None else (v >> (8 * b)) & 0xFF)
        return out

    def write(self, addr, data):
        for dw in range(addr // 4, (addr + len(data) - 1) // 4 + 1):
            value, be = 0, 0
            for b in range(4):
                a = dw * 4 + b
                if addr <= a < addr + len(data):
                    value |= data[a - addr] << (8 * b)
                    be |= 1 << b
            self.write_dw(dw, value, be)


def _check(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        if w is not None and g != w:
            raise AssertionError(f"{what}: byte {i} is {g:#04x}, expected {w:#04x} "
                                 f"(got {bytes(got).hex()}, want {['--' if x is None else f'{x:02x}' for x in want]})")


def _safe_dw(dw):
    hit = REGMAP.at_dword(dw)
    return hit is None or hit[0].name not in _VOLATILE


def _no_side_effect(dw):
    """Writing the DWORD changes nothing but a register: no queue's or
    completion queue's CTRL (it would start it), no doorbell."""
    hit = REGMAP.at_dword(dw)
    return hit is None or not (hit[0].block and (hit[0].name.endswith("_CTRL") or hit[0].access == "wo"))


@cocotb.test()
async def identity_and_build_registers_match_the_configuration(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    cfg = tb.config
    for name, value in const_values(cfg).items():
        got = await nic.read(name)
        assert got == value, f"{name} reads {got:#x}, expected {value:#x}"
    assert nic.build == {k: getattr(cfg, k) for k in nic.build}, nic.build
    status = await nic.read_fields("STATUS")
    assert status["BUS_MASTER"] == 1 and status["MSI_ENABLE"] == 1, status
    assert status["REQUESTER_ID"] == int(tb.dev.fn.pcie_id), status
    assert 128 << status["MPS"] == tb.dev.mps and 128 << status["MRRS"] == tb.dev.mrrs, status
    c0 = await nic.read("CYCLE_COUNT")
    await ClockCycles(dut.clk, 100)
    c1 = await nic.read("CYCLE_COUNT")
    assert c1 - c0 >= 100, (c0, c1)
    await tb.check_protocol()


@cocotb.test()
async def every_size_and_alignment_reads_back_what_was_written(dut):
    tb = NicTestbench(dut)
    await tb.start()
    model = RegFileModel(tb.config)
    t = tb.transport
    rng = random.Random(1)
    base = REGMAP["SCRATCH64"].addr
    for size in (1, 2, 4, 8):
        for align in range(8):
            addr = base + align - (4 if align >= 4 and size == 8 else 0)
            data = bytes(rng.randrange(256) for _ in range(size))
            await t.mmio_write(addr, data)
            model.write(addr, data)
            for rsize in (1, 2, 4, 8):
                for raddr in range(base - 4, base + 12 - rsize + 1):
                    got = await t.mmio_read(raddr, rsize)
                    _check(got, model.read(raddr, rsize),
                           f"read {rsize}B at {raddr:#x} after write {size}B at {addr:#x}")
    assert await tb.nic.read("ERR_MMIO_UNMAPPED_RD") == model.unmapped_rd
    await tb.check_protocol()


@cocotb.test()
async def random_mmio_traffic_matches_the_register_model(dut):
    seed = int(os.environ.get("PTLNIC_SEED", "1"))
    rng = random.Random(seed)
    dut._log.info("seed %d", seed)
    tb = NicTestbench(dut)
    await tb.start()
    model = RegFileModel(tb.config)
    t = tb.transport
    span = 0x300
    # Per-queue registers are served by the queue subsystem's register tables
    # (block RAM): the same rules, entries at random, holes included.
    tables = [REGMAP.block(n) for n in ("TXQ", "RXQ", "CQ")]
    for i in range(600):
        size = rng.choice((1, 2, 4, 8))
        roll = rng.random()
        if roll < 0.1:
            addr = rng.choice((0x3000, 0xF000, tb.config.bar0_size - 16, REGMAP["TXQ1_DB"].addr + 8,
                               REGMAP["CQ0_DB"].addr + 0x100)) + rng.randrange(4)
        elif roll < 0.45:
            b = rng.choice(tables)
            addr = b.base + rng.randrange(b.count) * b.stride + rng.randrange(b.stride - size + 1)
        else:
            addr = rng.randrange(span - size)
        dws = range(addr // 4, (addr + size - 1) // 4 + 1)
        if not all(_safe_dw(d) for d in dws):
            continue
        if rng.random() < 0.5:
            if not all(_no_side_effect(d) for d in dws):
                continue
            data = bytes(rng.randrange(256) for _ in range(size))
            await t.mmio_write(addr, data)
            model.write(addr, data)
        else:
            got = await t.mmio_read(addr, size)
            _check(got, model.read(addr, size), f"op {i}: read {size}B at {addr:#x} (seed {seed})")
    for name in ("ERR_MMIO_UNMAPPED_RD", "ERR_MMIO_BAD_WR"):
        want = model.unmapped_rd if name == "ERR_MMIO_UNMAPPED_RD" else model.bad_wr
        got = await tb.nic.read(name)
        assert got == want, f"{name} is {got}, model says {want} (seed {seed})"
    assert model.unmapped_rd > 0 and model.bad_wr > 0, "the random traffic never hit an error case"
    await tb.check_protocol()


@cocotb.test()
async def refused_requests_are_answered_and_counted(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    cfg = tb.config
    cpls = []
    tb.dev.tx_observers.append(lambda ft, hdr, payload: cpls.append(hdr) if ft == FMT_TYPE_CPL else None)

    # A read longer than the MMIO limit: Completer Abort.
    try:
        await tb.transport.mmio_read(0, 4 * cfg.mmio_max_dw + 4)
        raise AssertionError("an over-long MMIO read completed successfully")
    except Exception as exc:
        assert "Unsuccessful completion" in str(exc), exc
    assert hdr_get(cpls[-1], "cpl.dw1.status") == CplStatus.CA
    assert await nic.read("ERR_MMIO_BAD_REQ") == 1

    # An over-long write is dropped.
    await nic.write("SCRATCH", 0x1111_1111)
    await tb.transport.mmio_write(REGMAP["SCRATCH"].addr, b"\x22" * (4 * cfg.mmio_max_dw + 4))
    assert await nic.read("SCRATCH") == 0x1111_1111
    assert await nic.read("ERR_MMIO_BAD_REQ") == 2

    # Requests aimed at another BAR and non-memory requests.
    base = tb.transport.bar.get_absolute_address(0)
    rd = Tlp()
    rd.fmt_type = TlpType.MEM_READ
    rd.requester_id = tb.rc.upstream_bridge.pcie_id if hasattr(tb.rc, "upstream_bridge") else 0
    rd.tag = 77
    rd.set_addr_be(base + REGMAP["MAGIC"].addr, 4)
    tb.dev.host_request(rd, 3)
    io = Tlp()
    io.fmt_type = TlpType.IO_READ
    io.tag = 78
    io.set_addr_be(0x100, 4)
    tb.dev.host_request(io, 0)
    wr = Tlp()
    wr.fmt_type = TlpType.MEM_WRITE
    wr.set_addr_be_data(base + REGMAP["SCRATCH"].addr, b"\x33\x33\x33\x33")
    tb.dev.host_request(wr, 2)
    await ClockCycles(dut.clk, 50)
    ur = [h for h in cpls if hdr_get(h, "cpl.dw1.status") == CplStatus.UR]
    assert sorted(hdr_get(h, "cpl.dw2.tag") for h in ur) == [77, 78], [hex(h) for h in cpls]
    assert await nic.read("SCRATCH") == 0x1111_1111
    assert await nic.read("ERR_MMIO_BAD_REQ") == 5
    # The completions for the injected requests reach a root complex that did not
    # send them; it only logs them.
    await tb.check_protocol()


@cocotb.test()
async def soft_reset_restores_defaults_and_clears_counters(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    await nic.write("SCRATCH", 0xDEAD_BEEF)
    await nic.write("SCRATCH64", 0x0123_4567_89AB_CDEF)
    await nic.write("DMA_CPL_TIMEOUT", 1234)
    # Registers in the queue subsystem's tables return to their reset values too.
    table_regs = {"TXQ0_BASE": 0x1234_5678_9ABC_DEF0, "RXQ3_BASE": 0x55AA, "CQ1_MOD_TIME": 77,
                  "RXQ1_CTRL": REGMAP["RXQ1_CTRL"].pack(LOG_SIZE=5, CQ=3)}
    for name, value in table_regs.items():
        await nic.write(name, value)
        assert await nic.read(name) == value, name
    await tb.transport.mmio_read(0xF000, 4)     # count an unmapped read
    assert await nic.read("ERR_MMIO_UNMAPPED_RD") == 1
    await nic.soft_reset()
    assert await nic.read("SCRATCH") == 0
    assert await nic.read("SCRATCH64") == 0
    assert (await nic.read_fields("CONTROL"))["IRQ_ENABLE"] == 1, "the driver restores its interrupt enable"
    assert await nic.read("DMA_CPL_TIMEOUT") == tb.config.cpl_timeout
    for name in table_regs:
        assert await nic.read(name) == 0, f"{name} kept its value through the soft reset"
    assert await nic.read("ERR_MMIO_UNMAPPED_RD") == 0
    assert await nic.read("MAGIC") == const_values(tb.config)["MAGIC"]
    # COUNTER_CLEAR alone clears counters and keeps registers.
    await nic.write("SCRATCH", 5)
    await tb.transport.mmio_read(0xF000, 4)
    await nic.clear_counters()
    assert await nic.read("ERR_MMIO_UNMAPPED_RD") == 0
    assert await nic.read("SCRATCH") == 5
    await tb.check_protocol()


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import WIDTHS, config_for  # noqa: E402


@pytest.mark.parametrize("width", WIDTHS)
def test_mmio(width, seed):
    run_cocotb("cocotb_tests.test_mmio", config_for(width), env={"PTLNIC_SEED": str(seed)})
