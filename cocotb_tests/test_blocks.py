"""Block-level testbenches in Amaranth's simulator, with random idle cycles on
the inputs and random back-pressure on the outputs."""

import random

from amaranth.hdl import Module
from amaranth.sim import Simulator

from rtl.config import NicConfig
from rtl.csr import RegisterFile
from rtl.queues.common import CqRegs
from rtl.queues.cpl import CplWriter
from rtl.queues.layouts import CPL_BYTES, Completion, unpack
from rtl.regmap import regmap


def test_completion_writer_places_every_record_and_always_takes_its_statuses(seed):
    """Records for two completion rings from both engines, each after a
    claimed slot, with idle cycles; the DMA engine model stalls requests and
    data at random and answers late. Every record lands once, in its ring's
    next slot with the right phase, two consecutive records of a ring share a
    write at most, the host's consumer index frees slots, and a status is
    never left waiting (the deadlock rule)."""
    rng = random.Random(seed)
    cfg = NicConfig(data_width=256, num_queues=2, num_cqs=2)
    rmap = regmap(cfg)
    m = Module()
    m.submodules.csr = csr = RegisterFile(cfg)
    cqs = [CqRegs(csr, cfg, j) for j in range(cfg.num_cqs)]
    m.submodules.w = w = CplWriter(cfg, cqs)
    log_sizes = {0: 2, 1: 3}
    bases = {0: 0x10000, 1: 0x20000}
    per_cq = 40
    memory = {}                    # address -> 16-byte record
    landed = {0: [], 1: []}        # records by ring, in the order their writes came
    waited = []

    async def reg_write(ctx, name, value):
        reg = rmap[name]
        for half in range(reg.dwords):
            ctx.set(csr.bus.addr, reg.addr // 4 + half)
            ctx.set(csr.bus.w_be, 0xF)
            ctx.set(csr.bus.w_data, (value >> (32 * half)) & 0xFFFF_FFFF)
            ctx.set(csr.bus.w_stb, 1)
            await ctx.tick()
        ctx.set(csr.bus.w_stb, 0)
        await ctx.tick()

    async def engine(ctx):
        """The DMA write engine: requests and data with random stalls, statuses later, in order."""
        req, dat, resp = w.dma.req, w.dma.data, w.dma.resp
        owed = []                  # statuses to give, with the cycle they are due
        cur = None
        cycle = 0
        while True:
            cycle += 1
            ctx.set(req.ready, int(cur is None and rng.random() < 0.7))
            ctx.set(dat.ready, int(cur is not None and rng.random() < 0.7))
            due = bool(owed) and owed[0][0] <= cycle
            ctx.set(resp.valid, int(due))
            _, _, rv, rr, rp, dv, dr, dp, sv, sr = await ctx.tick().sample(
                req.valid, req.ready, req.payload, dat.valid, dat.ready, dat.payload, resp.valid, resp.ready)
            if sv and not sr:
                waited.append(cycle)
            if sv and sr:
                # The write has reached the host: its records are visible now.
                _, ring, placed = owed.pop(0)
                for addr, r in placed:
                    memory[addr] = r
                    landed[ring].append((addr, unpack(Completion, r)))
            if rv and rr:
                cur = (rp.addr, rp.len)
            if dv and dr:
                addr, length = cur
                raw = dp.data.to_bytes(32, "little")[:dp.nbytes]
                assert dp.last and dp.nbytes == length in (CPL_BYTES, 2 * CPL_BYTES), (dp.nbytes, length)
                recs = [raw[k:k + CPL_BYTES] for k in range(0, length, CPL_BYTES)]
                ring = 0 if addr < bases[1] else 1
                owed.append((cycle + rng.randint(1, 12), ring,
                             [(addr + k * CPL_BYTES, r) for k, r in enumerate(recs)]))
                cur = None

    async def producer(ctx, stream, kind):
        """Records for both rings, each after a slot was claimed for it."""
        claim = w.claim.tx if kind == 0 else w.claim.rx
        sent = 0
        while sent < 2 * per_cq:
            cq = sent % 2
            while not ((ctx.get(w.claim.room) >> cq) & 1) \
                    or rng.random() < 0.3:
                ctx.set(claim.en, 0)
                await ctx.tick()
            ctx.set(claim.en, 1)
            ctx.set(claim.cq, cq)
            await ctx.tick()
            ctx.set(claim.en, 0)
            ctx.set(stream.payload.cq, cq)
            ctx.set(stream.payload.kind, kind)
            ctx.set(stream.payload.queue, 0)
            ctx.set(stream.payload.index, sent)
            ctx.set(stream.payload.ndesc, 1)
            ctx.set(stream.payload.len, 1000 + sent)
            ctx.set(stream.payload.status, 0)
            ctx.set(stream.valid, 1)
            await ctx.tick().until(stream.ready)
            ctx.set(stream.valid, 0)
            sent += 1

    async def main(ctx):
        for j in (0, 1):
            await reg_write(ctx, f"CQ{j}_BASE", bases[j])
            ctrl = rmap[f"CQ{j}_CTRL"].pack(ENABLE=1, LOG_SIZE=log_sizes[j], MOD_COUNT=1)
            await reg_write(ctx, f"CQ{j}_CTRL", ctrl)
        ctx.set(w.i_tx.valid, 0)
        ctx.set(w.i_rx.valid, 0)
        ctx.set(w.now, 0)
        consumed = {0: 0, 1: 0}
        for _ in range(20_000):
            await ctx.tick()
            # The host consumes what has landed, now and then.
            for j in (0, 1):
                if len(landed[j]) > consumed[j] and rng.random() < 0.05:
                    consumed[j] = len(landed[j])
                    await reg_write(ctx, f"CQ{j}_DB", rmap[f"CQ{j}_DB"].pack(CONS=consumed[j] & 0xFFFF))
            if all(len(landed[j]) == 2 * per_cq for j in (0, 1)):
                return
        raise AssertionError(f"records landed: {[len(landed[j]) for j in (0, 1)]} of {2 * per_cq} each")

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(engine, background=True)

    async def tx_records(ctx):
        await producer(ctx, w.i_tx, 0)

    async def rx_records(ctx):
        await producer(ctx, w.i_rx, 1)
    sim.add_testbench(tx_records, background=True)
    sim.add_testbench(rx_records, background=True)
    sim.add_testbench(main)
    sim.run()
    assert not waited, f"DMA write statuses waited at cycles {waited[:10]}"
    for j in (0, 1):
        size = 1 << log_sizes[j]
        for n, (addr, rec) in enumerate(landed[j]):
            assert addr == bases[j] + (n % size) * CPL_BYTES, f"ring {j} record {n} at {addr:#x}"
            assert rec["phase"] == 1 - ((n >> log_sizes[j]) & 1), f"ring {j} record {n}: phase {rec['phase']}"
        # Each engine's records for this ring arrive in the order it sent them.
        for kind in (0, 1):
            mine = [rec["index"] for _, rec in landed[j] if rec["kind"] == kind]
            assert mine == [i for i in range(2 * per_cq) if i % 2 == j], f"ring {j}, engine {kind}: {mine}"
