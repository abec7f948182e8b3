"""Unit tests that need no Verilator model: configuration checks, the register
map, the TLP header layout against cocotbext-pcie's packing, byte-enable
arithmetic (RTL against plain Python), the packet arbiter and the DMA write
engine's realignment, the last three in the Amaranth simulator."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from cocotbext.pcie.core.tlp import Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from rtl.config import ConfigError, NicConfig
from rtl.dma.write import DmaWriteEngine
from rtl.pcie.arbiter import TlpArbiter
from rtl.pcie.be import read_byte_count, request_bes
from rtl.pcie.tlp import be_byte_count, first_last_be, hdr_get, tlp_beat_layout
from rtl.regmap import REGMAP, DmaStatus, Field, Register, RegisterMap, const_values
from sim.pcie import BeatCodec, _req_addr, hdr_to_tlp, tlp_to_hdr


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("kw, message", [
    (dict(data_width=96), "data_width must be 64, 128 or 256 bits, not 96"),
    (dict(data_width=512), "data_width must be 64, 128 or 256 bits, not 512 (512-bit beats are not built or tested"),
    (dict(dma_tags=24), "dma_tags must be a power of two from 2 to 256, not 24"),
    (dict(max_payload_size=100), "max_payload_size must be a power of two from 128 to 4096 bytes, not 100"),
    (dict(dma_read_buffer=512), "dma_read_buffer must be a power of two of at least two read requests"),
    (dict(msi_vectors=3), "msi_vectors must be 1, 2, 4, 8, 16 or 32, not 3"),
    (dict(bar0_size=4096), "bar0_size must be a power of two of at least 64 KiB, not 4096"),
])
def test_config_rejects_bad_values_with_a_clear_message(kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        NicConfig(**kw)


def test_config_key_names_the_differences_from_the_default():
    assert NicConfig().key() == "w256"
    assert NicConfig(data_width=64, dma_tags=16).key() == "w64-dma_tags16"


# ------------------------------------------------------------------ register map
def test_register_map_is_consistent_and_fits_bar0():
    cfg = NicConfig()
    assert REGMAP.size <= cfg.bar0_size
    for reg in REGMAP:
        for half in range(reg.dwords):
            assert REGMAP.at_dword(reg.addr // 4 + half) == (reg, half)
    assert set(const_values(cfg)) == {r.name for r in REGMAP if r.access == "const"}


def test_register_map_refuses_overlaps_and_bad_fields():
    with pytest.raises(ValueError, match="overlaps"):
        RegisterMap([Register("A", 0, "rw", width=64), Register("B", 4, "rw")])
    with pytest.raises(ValueError, match="does not fit"):
        Register("C", 0, "rw", fields=(Field("X", 30, 4),))
    with pytest.raises(ValueError, match="access must be one of"):
        Register("D", 0, "rx")
    reg = REGMAP["DMA_TEST_CTRL"]
    assert reg.unpack(reg.pack(START=1, WRITE=1)) == {"START": 1, "WRITE": 1, "IRQ": 0}
    with pytest.raises(ValueError, match="does not fit"):
        reg.pack(START=2)


# ------------------------------------------------------------------ TLP headers
def _random_tlps(rng, n):
    for _ in range(n):
        t = Tlp()
        kind = rng.choice(("rd", "wr", "cpld", "cpl"))
        t.requester_id = PcieId.from_int(rng.randrange(1 << 16))
        t.tag = rng.randrange(256)
        if kind in ("rd", "wr"):
            addr = rng.choice((rng.randrange(1 << 32), rng.randrange(1 << 32, 1 << 64))) & ~3
            big = addr >> 32
            length = rng.randint(1, 64)
            if kind == "rd":
                t.fmt_type = TlpType.MEM_READ_64 if big else TlpType.MEM_READ
                t.set_addr_be(addr + rng.randrange(4), length)
            else:
                t.fmt_type = TlpType.MEM_WRITE_64 if big else TlpType.MEM_WRITE
                t.set_addr_be_data(addr + rng.randrange(4), bytes(rng.randrange(256) for _ in range(length)))
        else:
            t.fmt_type = TlpType.CPL_DATA if kind == "cpld" else TlpType.CPL
            t.completer_id = PcieId.from_int(rng.randrange(1 << 16))
            t.byte_count = rng.randrange(1, 4096)
            t.lower_address = rng.randrange(128)
            t.status = 0
            if kind == "cpld":
                t.set_data(bytes(4 * rng.randint(1, 8)))
        yield kind, t


def test_header_layout_agrees_with_cocotbext_pcie():
    rng = random.Random(7)
    for kind, t in _random_tlps(rng, 500):
        hdr = tlp_to_hdr(t)
        if kind in ("rd", "wr"):
            assert hdr_get(hdr, "req.dw1.tag") == t.tag
            assert hdr_get(hdr, "req.dw1.first_be") == t.first_be
            assert hdr_get(hdr, "req.dw1.last_be") == t.last_be
            assert hdr_get(hdr, "req.dw1.requester_id") == int(t.requester_id)
            assert _req_addr(hdr) == t.address
            assert hdr_get(hdr, "req.dw0.length") == t.length % 1024
        else:
            assert hdr_get(hdr, "cpl.dw2.tag") == t.tag
            assert hdr_get(hdr, "cpl.dw1.byte_count") == t.byte_count % 4096
            assert hdr_get(hdr, "cpl.dw2.lower_address") == t.lower_address
            assert hdr_get(hdr, "cpl.dw1.completer_id") == int(t.completer_id)
        back = hdr_to_tlp(hdr, bytes(t.data))
        assert back.pack() == t.pack()


def test_beat_codec_round_trips_payloads():
    for width in (64, 128, 256):
        codec = BeatCodec(width)
        assert codec.width == tlp_beat_layout(width).size
        payload = bytes(range(37 * 4 % 256)) * 1
        beats = codec.beats(0x1234, payload, bar=2)
        got = bytearray()
        for i, b in enumerate(beats):
            hdr, data, nbytes, sop, eop = codec.unpack(b)
            assert (sop, eop) == (int(i == 0), int(i == len(beats) - 1)) and hdr == 0x1234
            got += data.to_bytes(width // 8, "little")[:nbytes]
        assert bytes(got) == payload


# ------------------------------------------------------------------ byte enables
def test_python_byte_enables_match_brute_force():
    for addr in range(8):
        for length in range(1, 40):
            first, last, dws = first_last_be(addr, length)
            enabled = [addr <= (addr & ~3) + i < addr + length for i in range(4 * dws)]
            assert first == sum(1 << i for i in range(4) if enabled[i])
            if dws > 1:
                assert last == sum(1 << i for i in range(4) if enabled[4 * (dws - 1) + i])
            assert be_byte_count(first, last, dws) == length


def _run(dut_module, bench, clock=True):
    sim = Simulator(dut_module)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_rtl_byte_enables_match_python():
    m = Module()
    addr_lo = Signal(2)
    nbytes = Signal(13)
    dws, first, last = request_bes(m, addr_lo, nbytes, 13)
    bc = read_byte_count(m, first, last, dws)

    async def bench(ctx):
        for a in range(4):
            for n in list(range(1, 70)) + [4093, 4094, 4095, 4096]:
                ctx.set(addr_lo, a)
                ctx.set(nbytes, n)
                want = first_last_be(a, n)
                assert (ctx.get(first), ctx.get(last), ctx.get(dws)) == want, (a, n)
                assert ctx.get(bc) == n, (a, n)
    _run(m, bench, clock=False)


# ------------------------------------------------------------------ arbiter
@pytest.mark.parametrize("pause", [0.0, 0.4])
def test_arbiter_never_interleaves_packets_and_leaves_no_gap(pause, seed):
    """Under random back-pressure (``pause``) and idle sources, packets stay
    whole and in order per source, and the output idles only when no source
    has a beat (or the consumer is not ready)."""
    width = 64
    arb = TlpArbiter(width, 3)
    rng = random.Random(seed)
    packets = {k: [[(k << 8) | (p << 4) | b for b in range(rng.randint(1, 5))] for p in range(12)]
               for k in range(3)}
    out = []
    stalls = []

    def producer(k):
        async def run(ctx):
            port = arb.inputs()[k]
            for pkt in packets[k]:
                for i, word in enumerate(pkt):
                    ctx.set(port.payload.data, word)
                    ctx.set(port.payload.sop, i == 0)
                    ctx.set(port.payload.eop, i == len(pkt) - 1)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
                while rng.random() < 0.2:
                    await ctx.tick()
        return run

    async def consumer(ctx):
        total = sum(len(p) for ps in packets.values() for p in ps)
        cycles = 0
        ready = 1
        while len(out) < total:
            ctx.set(arb.o_tlp.ready, ready)
            _, _, valid, data, *waiting = await ctx.tick().sample(
                arb.o_tlp.valid, arb.o_tlp.payload.data, *[p.valid for p in arb.inputs()])
            cycles += 1
            assert cycles < 20 * total, "arbiter stalled"
            if valid and ready:
                out.append(data)
            elif ready and any(waiting) and cycles > 2:
                stalls.append(cycles)
            ready = int(rng.random() >= pause)

    sim = Simulator(arb)
    sim.add_clock(1e-8)
    for k in range(3):
        sim.add_testbench(producer(k), background=True)
    sim.add_testbench(consumer)
    sim.run()
    # Reassemble: each packet's words are contiguous and in order.
    i = 0
    seen = {k: 0 for k in range(3)}
    while i < len(out):
        k = out[i] >> 8
        pkt = packets[k][seen[k]]
        assert out[i:i + len(pkt)] == pkt, f"packet {k}.{seen[k]} interleaved: {out[i:i + len(pkt)]}"
        seen[k] += 1
        i += len(pkt)
    assert all(seen[k] == 12 for k in range(3))
    assert len(stalls) <= 1, f"idle output cycles while sources were waiting: {stalls}"


# ------------------------------------------------------------------ DMA write engine
@pytest.mark.parametrize("width", [64, 128])
def test_write_engine_scatters_byte_streams_at_every_offset_and_splits_at_mps(width):
    """Random offsets and lengths (empty requests among them) in scatter
    groups, with random idle input and back-pressure on the TLPs and on the
    statuses: every byte lands once, no TLP crosses MPS or 4 KiB, and a
    request's status comes only after all its bytes have passed."""
    cfg = NicConfig(data_width=width, max_payload_size=128)
    eng = DmaWriteEngine(cfg)
    bb = width // 8
    seed = width
    print(f"seed {seed}")
    rng = random.Random(seed)
    ops = [(0x1000 * (i + 1) + rng.randrange(300),
            rng.choice((0, 1, 2, 3, 5, bb - 1, bb, bb + 3, 127, 128, 129, 300))) for i in range(24)]
    stream = {i: bytes(rng.randrange(256) for _ in range(n)) for i, (_, n) in enumerate(ops)}
    # Requests in groups of one to three (scatter): a group's bytes are one packed stream.
    groups, i = [], 0
    while i < len(ops):
        k = min(rng.randint(1, 3), len(ops) - i)
        groups.append(list(range(i, i + k)))
        i += k
    memory = {}
    resps = []

    async def feeder(ctx):
        for g in groups:
            for j, i in enumerate(g):
                addr, n = ops[i]
                ctx.set(eng.req.payload.addr, addr)
                ctx.set(eng.req.payload.len, n)
                ctx.set(eng.req.payload.more, j < len(g) - 1)
                ctx.set(eng.req.valid, 1)
                await ctx.tick().until(eng.req.ready)
        ctx.set(eng.req.valid, 0)

    async def data(ctx):
        for g in groups:
            d = b"".join(stream[i] for i in g)
            n = len(d)
            for off in range(0, n, bb):
                ctx.set(eng.data.payload.data, int.from_bytes(d[off:off + bb], "little"))
                ctx.set(eng.data.payload.nbytes, min(bb, n - off))
                ctx.set(eng.data.payload.last, off + bb >= n)
                ctx.set(eng.data.valid, 1)
                await ctx.tick().until(eng.data.ready)
                if rng.random() < 0.2:
                    ctx.set(eng.data.valid, 0)
                    await ctx.tick()
        ctx.set(eng.data.valid, 0)

    def land(addr, length, fbe, lbe, payload):
        assert len(payload) == 4 * length and 4 * length <= 128 + 4
        assert (addr & 0xFFF) + 4 * length <= 0x1000
        masks = [fbe] + [0xF] * (length - 2) + ([lbe] if length > 1 else [])
        for i, b in enumerate(payload):
            if masks[i >> 2] >> (i & 3) & 1:
                assert addr + i not in memory, f"byte {addr + i:#x} written twice"
                memory[addr + i] = b

    async def sink(ctx):
        ctx.set(eng.cfg.bus_master, 1)
        ctx.set(eng.cfg.mps, 5)
        cur = None
        cycles = 0
        while len(resps) < len(ops):
            ctx.set(eng.o_tlp.ready, int(rng.random() > 0.2))
            ctx.set(eng.resp.ready, int(rng.random() > 0.3))
            _, _, rv, rr, rs, ov, orr, p = await ctx.tick().sample(
                eng.resp.valid, eng.resp.ready, eng.resp.payload.status, eng.o_tlp.valid, eng.o_tlp.ready,
                eng.o_tlp.payload)
            cycles += 1
            assert cycles < 20000, "write engine stalled"
            if ov and orr:
                if p.sop:
                    h = p.hdr.req
                    cur = [h.dw2 if not (h.dw0.fmt & 1) else h.dw3 | (h.dw2 << 32), h.dw0.length,
                           h.dw1.first_be, h.dw1.last_be, bytearray()]
                cur[4] += p.data.to_bytes(bb, "little")[:p.nbytes]
                if p.eop:
                    land(*cur)
            if rv and rr:
                k = len(resps)
                addr, n = ops[k]
                missing = [addr + j for j in range(n) if addr + j not in memory]
                assert not missing, f"status of op {k} before its bytes {missing[:4]} passed"
                resps.append(rs)

    sim = Simulator(eng)
    sim.add_clock(1e-8)
    sim.add_testbench(feeder, background=True)
    sim.add_testbench(data, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert resps == [DmaStatus.ZERO_LENGTH if n == 0 else DmaStatus.OK for _, n in ops]
    for i, (addr, n) in enumerate(ops):
        got = bytes(memory[addr + j] if (addr + j) in memory else 0xEE for j in range(n))
        assert got == stream[i], f"op {i} at {addr:#x}, {n} bytes"
    assert len(memory) == sum(n for _, n in ops)


# ------------------------------------------------------------------ subsystems
def test_pcie_subsystem_sizes_its_multiplexers_from_what_registered():
    """Clients and interrupt sources register by name; the multiplexers and the
    interrupt request are sized from the list; registering late is refused."""
    from amaranth.hdl import Fragment
    from rtl.pcie.subsystem import PcieSubsystem
    pcie = PcieSubsystem(NicConfig(data_width=64))
    ports = [pcie.add_read_client(n) for n in ("a", "b", "c")]
    pcie.add_write_client("w")
    irq = pcie.add_irq("i")
    assert len(irq) == NicConfig().msi_vectors
    assert "req" in ports[0].signature.members and "data" in ports[0].signature.members
    frag = Fragment.get(pcie, None)
    assert pcie.clients() == (["a", "b", "c"], ["w"], ["i"])
    names = {name for _, name, _ in frag.subfragments}
    assert {"rd_mux", "wr_mux", "dma_rd", "dma_wr", "msi", "mmio", "arbiter"} <= names, names
    with pytest.raises(RuntimeError, match="read client 'late' registered after the PCIe subsystem was elaborated"):
        pcie.add_read_client("late")


def test_congestion_estimate_spreads_each_net_over_its_box():
    from sim.congestion import estimate

    def cell(x, y, outs, ins):
        conns = {"Z": outs, "A": ins}
        return {"attributes": {"NEXTPNR_BEL": f"X{x}/Y{y}/SLICEA"}, "connections": conns,
                "port_directions": {"Z": "output", "A": "input"}}

    netlist = {"modules": {"top": {"cells": {
        "nic.queues.desc.a": cell(0, 0, [1, 2], []),
        "nic.csr.b": cell(2, 0, [], [1]),
        "nic.csr.c": cell(0, 1, [], [2]),
        "lonely": cell(1, 1, [3], []),          # a net with one pin is not counted
    }}}}
    grid, nets, cells = estimate(netlist)
    assert sorted(b for b, *_ in nets) == ["nic.queues.desc", "nic.queues.desc"]
    wide, tall = 4 / 3, 3 / 2                 # (w + h) / (w * h): 3 x 1 and 1 x 2 boxes
    assert grid[0] == pytest.approx([wide + tall, wide, wide])
    assert grid[1] == pytest.approx([tall, 0, 0])
    assert sorted(cells) == [("lonely", 1, 1), ("nic.csr.b", 2, 0), ("nic.csr.c", 0, 1),
                             ("nic.queues.desc", 0, 0)]
