"""Block-level testbenches in Amaranth's simulator, with random idle cycles on
the inputs and random back-pressure on the outputs."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from cocotb_tests.blocksim import simulate, sink, source
from rtl.config import NicConfig
from rtl.csr import READ_LATENCY, RegisterFile
from rtl.lib.counters import CounterTable
from rtl.lib.stream import BufferedFifo, RegisterSlice
from rtl.queues.common import MrRegs
from rtl.queues.cpl import CplWriter
from rtl.queues.desc import DescQueues
from rtl.queues.layouts import CPL_BYTES, DESC_BYTES, Completion, Descriptor, DescFlags, QueueStatus, pack, unpack
from rtl.regmap import regmap


async def reg_write(ctx, csr, rmap, name, value):
    """A register write on the register file's bus, DWORD by DWORD (once the
    register tables have cleared themselves after reset)."""
    while ctx.get(csr.busy):
        await ctx.tick()
    reg = rmap[name]
    for half in range(reg.dwords):
        ctx.set(csr.bus.addr, reg.addr // 4 + half)
        ctx.set(csr.bus.w_be, 0xF)
        ctx.set(csr.bus.w_data, (value >> (32 * half)) & 0xFFFF_FFFF)
        ctx.set(csr.bus.w_stb, 1)
        await ctx.tick()
    ctx.set(csr.bus.w_stb, 0)
    await ctx.tick()


async def reg_read(ctx, csr, rmap, name):
    """A 32-bit register read on the register file's bus, as its fields."""
    reg = rmap[name]
    ctx.set(csr.bus.addr, reg.addr // 4)
    ctx.set(csr.bus.r_stb, 1)
    await ctx.tick()
    ctx.set(csr.bus.r_stb, 0)
    for _ in range(READ_LATENCY - 1):
        await ctx.tick()
    return reg.unpack(ctx.get(csr.bus.r_data))


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
    m.submodules.w = w = CplWriter(cfg, {name: csr.add_table(name) for name in ("CQ", "CQ_DB")})
    turn = Signal()
    m.d.sync += turn.eq(~turn)
    log_sizes = {0: 2, 1: 3}
    claimed = {0: 0, 1: 0}
    consumed = {0: 0, 1: 0}
    bases = {0: 0x10000, 1: 0x20000}
    per_cq = 40
    memory = {}                    # address -> 16-byte record
    landed = {0: [], 1: []}        # records by ring, in the order their writes came
    waited = []

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
        """Records for both rings, each after a slot was claimed for it: the
        engine names the completion queue, waits until the writer says it has
        room, and claims. The two engines claim on alternate cycles (the
        descriptor unit asks for two slots when both may claim from one queue
        in a cycle), and never more slots than a ring has are unconsumed."""
        claim = w.claim.tx if kind == 0 else w.claim.rx
        sent = 0
        while sent < 2 * per_cq:
            cq = sent % 2
            ctx.set(claim.cq, cq)
            ctx.set(claim.en, 0)
            await ctx.tick()
            while not (ctx.get(w.claim.room) >> kind & 1) or ctx.get(turn) != kind or rng.random() < 0.3:
                await ctx.tick()
            assert claimed[cq] - consumed[cq] < 1 << log_sizes[cq], f"ring {cq}: a slot claimed beyond the ring"
            claimed[cq] += 1
            ctx.set(claim.en, 1)
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
        # The producers own their streams (valid starts low): once a CQ is
        # active they may already be offering a record, so nothing here drives them.
        for j in (0, 1):
            await reg_write(ctx, csr, rmap, f"CQ{j}_BASE", bases[j])
            ctrl = rmap[f"CQ{j}_CTRL"].pack(ENABLE=1, LOG_SIZE=log_sizes[j], MOD_COUNT=1)
            await reg_write(ctx, csr, rmap, f"CQ{j}_CTRL", ctrl)
        for _ in range(20_000):
            await ctx.tick()
            # The host consumes what has landed, now and then.
            for j in (0, 1):
                if len(landed[j]) > consumed[j] and rng.random() < 0.05:
                    consumed[j] = len(landed[j])
                    await reg_write(ctx, csr, rmap, f"CQ{j}_DB", rmap[f"CQ{j}_DB"].pack(CONS=consumed[j] & 0xFFFF))
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


@pytest.mark.parametrize("width", [64, 256])
def test_descriptor_queues_hand_out_every_posted_chain(width, seed):
    """Descriptor rings of every transmit and receive queue, posted in chains
    of one to three descriptors (some empty, some outside the protection
    domain, some longer than 64 KiB) with doorbells now and then; the DMA
    read model stalls requests and data at random and answers late; two
    engine models take chains at random moments, only from queues whose
    completion queue has room (which flickers), read them descriptor by
    descriptor with pauses, and retire their completions late. Each queue's
    chains come out in order, whole, with their first error, byte count,
    ring index and completion queue; the protection and zero-length counters
    see each bad descriptor once; HEAD meets TAIL; and once disabled every
    queue drains."""
    rng = random.Random(seed)
    cfg = NicConfig(data_width=width, num_queues=4, num_cqs=2, desc_cache=8, num_mrs=2)
    rmap = regmap(cfg)
    N, LOG, SIZE = cfg.num_queues, 3, 8
    m = Module()
    m.submodules.csr = csr = RegisterFile(cfg)
    tables = {name: csr.add_table(name) for name in ("TXQ", "RXQ", "TXQ_DB", "RXQ_DB")}
    m.submodules.dq = dq = DescQueues(cfg, tables, [MrRegs(csr, cfg, k) for k in range(cfg.num_mrs)])
    region = (0x100000, 0x100000)
    rings = [bytearray(SIZE * DESC_BYTES) for _ in range(2 * N)]
    ring_base = [0x10000 + q * 0x1000 for q in range(2 * N)]
    posted = [[] for _ in range(2 * N)]      # chains posted, not yet taken: (ring index, [(addr, len, flags)])
    tail = [0] * (2 * N)
    head = [0] * (2 * N)                     # descriptors taken by the engine models
    retiring = []                            # (due cycle, queue)
    cq_room = [0b11]                         # which of the two completion queues have room, this cycle
    expect = {"prot": 0, "zero": 0}
    seen = {"prot": 0, "zero": 0}
    chains_out = [0]
    now = [0]

    def name(q):
        return f"{'RX' if q >= N else 'TX'}Q{q % N}"

    def code(addr, length):
        if length == 0:
            return QueueStatus.ZERO_LENGTH
        inside = region[0] <= addr and addr + length <= region[0] + region[1]
        return QueueStatus.OK if inside else QueueStatus.PROTECTION

    def fetched(cycle, rp):
        q = (rp.addr - 0x10000) // 0x1000
        off = rp.addr - ring_base[q]
        assert 0 <= q < 2 * N and off % DESC_BYTES == 0 and 0 < rp.len and off + rp.len <= SIZE * DESC_BYTES, \
            f"fetch of {rp.len} bytes at {rp.addr:#x} is not inside one ring"
        assert not rp.more
        return cycle + rng.randint(2, 40), bytes(rings[q][off:off + rp.len])

    async def dma(ctx):
        await _dma_read_model(ctx, rng, dq.dma, fetched)

    async def engine(ctx, side):
        port = dq.rx if side else dq.tx
        extra = (port.release, port.work.ready) if side == 0 else ()
        while True:
            for s in (port.pop, port.claim, port.hold, port.keep, port.step, port.stay, *extra):
                ctx.set(s, 0)
            await ctx.tick()
            if rng.random() < 0.3:
                continue
            if side == 0:
                # The transmit side is handed queues from the work FIFO: take one.
                if not ctx.get(port.work.valid):
                    continue
                i = ctx.get(port.work.payload)
                ctx.set(port.work.ready, 1)
            else:
                # The receive side names any queue (a frame's).
                i = rng.randrange(N)
            q = side * N + i
            # Name the queue; its head chain is shown on the next cycle.
            ctx.set(port.alt, i)
            await ctx.tick()
            # ... and, as the engines do, again: they act on a look-up named
            # twice (the completion queue's room answers for the look-up of
            # the cycle before).
            if side == 0:
                ctx.set(port.work.ready, 0)
                ctx.set(port.keep, 1)
            await ctx.tick()
            if not ctx.get(port.ready) or not ctx.get(port.room):
                # Nothing cached, or no completion slot: the transmit engine
                # gives the queue back (parked until its completion queue has
                # room), the receive engine waits.
                assert side == 1 or ctx.get(port.ready), f"{name(q)} handed out without a chain cached"
                if side == 0:
                    ctx.set(port.release, 1)
                    await ctx.tick()
                    ctx.set(port.release, 0)
                continue
            assert posted[q], f"{name(q)}: a chain is offered that was never posted"
            first, chain = posted[q][0]
            n = ctx.get(port.len)
            assert n == len(chain), f"{name(q)} chain at {first}: {n} descriptors, posted {len(chain)}"
            codes = [code(a, n_) for a, n_, _ in chain]
            err = next((c for c in codes if c != QueueStatus.OK), QueueStatus.OK)
            total = sum(n_ for _, n_, _ in chain)
            assert ctx.get(port.err) == err, f"{name(q)} chain at {first}: error {ctx.get(port.err)}, expected {err}"
            assert ctx.get(port.bytes) == min(total, 0xFFFF), f"{name(q)}: {ctx.get(port.bytes)} bytes of {total}"
            assert ctx.get(port.head) == first & 0xFFFF and ctx.get(port.cq) == q % 2
            for k, (a, n_, f) in enumerate(chain):
                d = ctx.get(port.desc)
                assert (d.addr, d.len, d.flags) == (a, n_, f), f"{name(q)} chain at {first}, descriptor {k}"
                ctx.set(port.claim, int(k == 0))
                ctx.set(port.pop, int(k == n - 1))
                if side == 0:
                    ctx.set(port.release, int(k == n - 1))
                ctx.set(port.keep, 1)                    # the same queue ...
                ctx.set(port.step, int(k < n - 1))       # ... its next descriptor (after the last: the next chain)
                await ctx.tick()
                ctx.set(port.claim, 0)
                ctx.set(port.pop, 0)
                if side == 0:
                    ctx.set(port.release, 0)
                ctx.set(port.step, 0)
                ctx.set(port.stay, int(k < n - 1))
                ctx.set(port.hold, int(k < n - 1))
                while rng.random() < 0.3:       # the engine pauses inside the chain
                    await ctx.tick()
            posted[q].pop(0)
            head[q] += n
            chains_out[0] += 1
            retiring.append((now[0] + rng.randint(1, 30), q))

    async def retire_and_room(ctx):
        while True:
            now[0] += 1
            due = [r for r in retiring if r[0] <= now[0]][:len(dq.retire)]
            for r in due:
                retiring.remove(r)
            for k, port in enumerate(dq.retire):
                ctx.set(port.en, int(k < len(due)))
                ctx.set(port.q, due[k][1] if k < len(due) else 0)
            # Each completion queue has room or not, flickering; the unit is
            # answered for the three it asks about.
            cq_room[0] = 0b11 if rng.random() < 0.7 else rng.randrange(4)
            asks = [ctx.get(a) for a in (dq.claim.tx.cq, dq.claim.rx.cq, dq.claim.scan)]
            ctx.set(dq.claim.room, sum((cq_room[0] >> (a % 2) & 1) << k for k, a in enumerate(asks)))
            ctx.set(dq.claim.room2, cq_room[0] >> (asks[1] % 2) & 1)
            _, _, prot, zero = await ctx.tick().sample(dq.prot, dq.zero)
            seen["prot"] += prot
            seen["zero"] += zero

    async def host(ctx):
        await reg_write(ctx, csr, rmap, "MR0_BASE", region[0])
        await reg_write(ctx, csr, rmap, "MR0_LEN", region[1])
        await reg_write(ctx, csr, rmap, "MR0_CTRL", rmap["MR0_CTRL"].pack(ENABLE=1, READ=1, WRITE=1, PD=0))
        for q in range(2 * N):
            await reg_write(ctx, csr, rmap, f"{name(q)}_BASE", ring_base[q])
            await reg_write(ctx, csr, rmap, f"{name(q)}_CTRL",
                            rmap[f"{name(q)}_CTRL"].pack(ENABLE=1, LOG_SIZE=LOG, CQ=q % 2, PD=0))
        posts = 0
        for step in range(100_000):
            if posts == 300:
                break
            q = rng.randrange(2 * N)
            k = rng.choice((1, 1, 2, 3))
            if tail[q] + k - head[q] <= SIZE:
                chain = []
                for j in range(k):
                    roll = rng.random()
                    length = 0 if roll < 0.04 else 70000 if roll < 0.07 else rng.randint(1, 3000)
                    addr = 0x900000 if rng.random() < 0.04 else region[0] + rng.randrange(0, 0x80000)
                    flags = DescFlags.MORE if j < k - 1 else 0
                    chain.append((addr, length, int(flags)))
                    c = code(addr, length)
                    expect["prot"] += c == QueueStatus.PROTECTION
                    expect["zero"] += c == QueueStatus.ZERO_LENGTH
                    slot = (tail[q] + j) % SIZE
                    rings[q][slot * DESC_BYTES:(slot + 1) * DESC_BYTES] = pack(Descriptor, addr=addr, len=length,
                                                                               flags=flags)
                posted[q].append((tail[q], chain))
                tail[q] += k
                posts += 1
                if rng.random() < 0.6:
                    await reg_write(ctx, csr, rmap, f"{name(q)}_DB", tail[q] & 0xFFFF)
            for q2 in range(2 * N):     # a full ring is rung, so that it drains
                if tail[q2] - head[q2] == SIZE:
                    await reg_write(ctx, csr, rmap, f"{name(q2)}_DB", tail[q2] & 0xFFFF)
            for _ in range(rng.randint(0, 6)):
                await ctx.tick()
        assert posts == 300, f"rings stayed full: {posts} chains posted (seed {seed})"
        for q in range(2 * N):
            await reg_write(ctx, csr, rmap, f"{name(q)}_DB", tail[q] & 0xFFFF)
        for _ in range(20_000):
            if not any(posted):
                break
            await ctx.tick()
        left = {name(q): len(posted[q]) for q in range(2 * N) if posted[q]}
        assert not left, f"chains never handed out: {left} (seed {seed})"
        for q in range(2 * N):
            st = await reg_read(ctx, csr, rmap, f"{name(q)}_STATE")
            assert st == {"HEAD": tail[q] & 0xFFFF, "TAIL": tail[q] & 0xFFFF}, f"{name(q)}: {st}"
        assert seen == expect, f"counter pulses {seen}, bad descriptors posted {expect}"
        for q in range(2 * N):
            await reg_write(ctx, csr, rmap, f"{name(q)}_CTRL", rmap[f"{name(q)}_CTRL"].pack(ENABLE=0, LOG_SIZE=LOG))
        for _ in range(100):
            await ctx.tick()
        for q in range(2 * N):
            e = await reg_read(ctx, csr, rmap, f"{name(q)}_ERROR")
            assert e == {"CODE": 0, "ACTIVE": 0, "DRAINING": 0}, f"{name(q)} after disable: {e}"

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(dma, background=True)
    for side in (0, 1):
        async def run_engine(ctx, side=side):
            await engine(ctx, side)
        sim.add_testbench(run_engine, background=True)
    sim.add_testbench(retire_and_room, background=True)
    sim.add_testbench(host)
    sim.run()
    assert chains_out[0] == 300


def test_descriptor_queues_start_afresh_after_a_reset():
    """The descriptor unit reset on its own (its memories keep their
    contents, the register tables keep ENABLE set): every queue reads as not
    running until the unit has swept its configurations, then starts a new
    incarnation from ENABLE, with both indices at 0, instead of running on
    with what the memories held."""
    from amaranth.hdl import ResetInserter
    cfg = NicConfig(data_width=64, num_queues=4, num_cqs=2, desc_cache=8, num_mrs=2)
    rmap = regmap(cfg)
    m = Module()
    m.submodules.csr = csr = RegisterFile(cfg)
    tables = {name: csr.add_table(name) for name in ("TXQ", "RXQ", "TXQ_DB", "RXQ_DB")}
    rst = Signal()
    dq = DescQueues(cfg, tables, [MrRegs(csr, cfg, k) for k in range(cfg.num_mrs)])
    m.submodules.dq = ResetInserter(rst)(dq)

    async def bench(ctx):
        for q in range(4):
            await reg_write(ctx, csr, rmap, f"TXQ{q}_CTRL", rmap[f"TXQ{q}_CTRL"].pack(ENABLE=1, LOG_SIZE=3))
        for _ in range(100):
            await ctx.tick()
        await reg_write(ctx, csr, rmap, "TXQ2_DB", 5)
        for _ in range(10):
            await ctx.tick()
        assert await reg_read(ctx, csr, rmap, "TXQ2_STATE") == {"HEAD": 0, "TAIL": 5}
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        seen_running = 0
        for _ in range(2 * cfg.num_queues):
            ctx.set(dq.tx.alt, 2)
            await ctx.tick()
            seen_running |= ctx.get(dq.tx.running)
        assert not seen_running, "a queue ran on its state from before the reset"
        for _ in range(200):
            await ctx.tick()
        e = await reg_read(ctx, csr, rmap, "TXQ2_ERROR")
        assert e == {"CODE": 0, "ACTIVE": 1, "DRAINING": 0}, f"TXQ2 after the reset: {e}"
        st = await reg_read(ctx, csr, rmap, "TXQ2_STATE")
        assert st == {"HEAD": 0, "TAIL": 0}, f"TXQ2 kept the indices of before the reset: {st}"

    simulate(m, bench)


def test_counter_table_counts_every_pulse_and_reads_exactly(seed):
    """Counters in a memory: random pulses on every counter (each busy
    counter pulsing most cycles, so its pending count is near its bound when
    the sweep comes), reads at random moments, clears now and then. Every
    read equals a plain count of the pulses before the read's cycle; the
    pulses are registered on the way in, so a clear drops the pulses of the
    cycle before it and counts those of its own."""
    rng = random.Random(seed)
    n = 37
    m = Module()
    m.submodules.t = t = CounterTable(n)
    counts = [0] * n
    busy = {k: rng.random() for k in range(n)}

    async def bench(ctx):
        nonlocal counts
        for cycle in range(6000):
            pulses = sum(1 << k for k in range(n) if rng.random() < busy[k])
            clear = rng.random() < 0.002
            read = rng.random() < 0.3
            k = rng.randrange(n)
            ctx.set(t.inc, pulses)
            ctx.set(t.clear, int(clear))
            ctx.set(t.r_stb, int(read))
            ctx.set(t.r_addr, k)
            want = counts[k]
            await ctx.tick()
            if read:
                got = ctx.get(t.r_data)
                assert got == min(want, 0xFFFF_FFFF), f"cycle {cycle}: counter {k} reads {got}, counted {want}"
            base = [0] * n if clear else counts
            counts = [c + (pulses >> i & 1) for i, c in enumerate(base)]
        ctx.set(t.r_stb, 0)

    simulate(m, bench)


@pytest.mark.parametrize("depth", [2, 3, 4, 8])
def test_buffered_fifo_keeps_order_level_and_one_item_a_cycle(depth, seed):
    """The block-RAM FIFO under the wide stream FIFOs: random pushes and pops
    against a Python deque (order, level; never ready when full nor valid
    when empty), and, with both sides always willing, one item through per
    cycle from a depth of three."""
    from collections import deque
    rng = random.Random(seed)
    m = Module()
    m.submodules.f = f = BufferedFifo(width=40, depth=depth)
    model = deque()
    moved = [0]

    async def bench(ctx):
        for cycle in range(3000):
            streaming = cycle >= 2000                 # both sides always willing
            push = streaming or rng.random() < 0.5
            pop = streaming or rng.random() < 0.5
            value = rng.getrandbits(40)
            ctx.set(f.w_en, int(push))
            ctx.set(f.w_data, value)
            ctx.set(f.r_en, int(pop))
            w_rdy, r_rdy, r_data, level = ctx.get(f.w_rdy), ctx.get(f.r_rdy), ctx.get(f.r_data), ctx.get(f.level)
            assert level == len(model), f"cycle {cycle}: level {level}, holds {len(model)}"
            assert not w_rdy or len(model) < depth, f"cycle {cycle}: w_rdy with {len(model)} of {depth} held"
            assert not r_rdy or model, f"cycle {cycle}: r_rdy with nothing held"
            if pop and r_rdy:
                assert r_data == model.popleft(), f"cycle {cycle}: out of order"
                moved[0] += streaming
            if push and w_rdy:
                model.append(value)
            await ctx.tick()

    simulate(m, bench)
    # Two entries (one in memory, one in the output register) pass an item
    # every other cycle; from three on, one a cycle.
    want = 495 if depth == 2 else 995
    assert moved[0] >= want, f"{moved[0]} items in 1000 cycles with both sides willing, depth {depth}"


@pytest.mark.parametrize("skid", [True, False])
def test_register_slice_passes_every_item_in_order_one_a_cycle(skid, seed):
    """The register slice on the streams between blocks, as a skid buffer and
    as a forward register: random idle cycles and back-pressure, every item
    out once and in order, ``valid`` never falling and the payload never
    changing before a transfer; its outputs do not follow a same-cycle change
    of the consumer's ``ready`` (they come from flip-flops; a forward
    register's input ``ready`` does, by design); and with both sides always
    willing, one item a cycle."""
    from amaranth.lib import data
    rng = random.Random(seed)
    dut = RegisterSlice(data.StructLayout({"value": 40}), skid=skid)
    out = dut.o_stream.payload.as_value()
    items = [rng.getrandbits(40) for _ in range(600)]
    got, when = [], []

    async def take(ctx):
        offered, cycle = None, 0
        while True:
            cycle += 1
            watched = (dut.o_stream.valid, out) + ((dut.i_stream.ready,) if skid else ())
            before = tuple(ctx.get(x) for x in watched)
            ctx.set(dut.o_stream.ready, int(len(got) >= 400 or rng.random() < 0.6))
            after = tuple(ctx.get(x) for x in watched)
            assert after == before, f"cycle {cycle}: the slice's outputs followed the consumer's ready"
            _, _, v, r, p = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.ready, out)
            if offered is not None:
                assert v and p == offered, f"cycle {cycle}: an offered item was withdrawn or changed"
            offered = None
            if v and r:
                got.append(p)
                when.append(cycle)
            elif v:
                offered = p

    async def main(ctx):
        await source(ctx, rng, dut.i_stream, items[:400], 0.4)
        await source(ctx, rng, dut.i_stream, items[400:], 0.0)
        while len(got) < len(items):
            await ctx.tick()

    simulate(dut, main, take)
    assert got == items
    # The last 190 items, both sides willing, leave on consecutive cycles.
    assert when[-1] - when[-190] == 189, f"190 items took {when[-1] - when[-190] + 1} cycles"


async def _dma_read_model(ctx, rng, client, on_request):
    """A DMA read engine as a read client sees it: requests taken at random
    (``on_request(cycle, payload)`` returns the cycle from which to answer and
    the bytes owed, or None while a group goes on); answers in request order,
    each a beat at a time with random gaps."""
    req, dat = client.req, client.data
    WB = len(dat.payload.data) // 8
    owed, cur, pos, offering = [], None, 0, False
    cycle = 0
    while True:
        cycle += 1
        ctx.set(req.ready, int(rng.random() < 0.6))
        if cur is None and owed and owed[0][0] <= cycle:
            cur, pos = owed.pop(0)[1], 0
        offering = cur is not None and (offering or rng.random() < 0.7)
        nb = min(WB, len(cur) - pos) if cur is not None else 0
        ctx.set(dat.valid, int(offering))
        if offering:
            ctx.set(dat.payload.data, int.from_bytes(cur[pos:pos + nb], "little"))
            ctx.set(dat.payload.nbytes, nb)
            ctx.set(dat.payload.last, int(pos + nb == len(cur)))
            ctx.set(dat.payload.status, 0)
        _, _, rv, rr, rp, dv, dr = await ctx.tick().sample(req.valid, req.ready, req.payload, dat.valid, dat.ready)
        if rv and rr:
            answer = on_request(cycle, rp)
            if answer is not None:
                owed.append(answer)
        if dv and dr:
            pos += nb
            offering = False
            if pos == len(cur):
                cur = None


def _payload(addr, n):
    """The bytes of a host buffer in the engine tests: a function of the address."""
    return bytes(((addr + k) * 7 + ((addr + k) >> 8)) & 0xFF for k in range(n))


class _ChainModel:
    """The descriptor queues as an engine sees them (``ChainPort``): per queue,
    chains of (address, length) buffers with their first error; the queue and
    descriptor named in one cycle are shown on the next, a pop of the shown
    queue already moving its next chain into view; completion-queue room that
    flickers (it is never full: an engine waits for it); queues not in
    ``running`` are disabled. With ``scheduled`` (the transmit side) it hands
    out queues with a chain through ``work``, each at most once, takes them
    back on ``release`` and parks those given back without room until they
    have it."""

    def __init__(self, rng, port, n, chains, running=None, scheduled=False):
        self.rng, self.port, self.n = rng, port, n
        self.running = (1 << n) - 1 if running is None else running
        self.chains = chains            # queue -> list of dicts(bufs, err, index)
        self.scheduled = scheduled
        self.parked = set()
        self.fifo = [q for q in range(n) if chains[q] and self.running >> q & 1] if scheduled else []
        self.held = None
        self.claims, self.pops = [], []

    def chain_of(self, q):
        c = self.chains[q]
        return c[0] if c else None

    async def run(self, ctx):
        p = self.port
        shown, shown_idx = 0, 0
        room = [True] * self.n
        self.show(ctx, room, shown, shown_idx)   # after reset, queue 0's first descriptor is shown
        extra = (p.release, p.work.ready, p.work.valid) if self.scheduled else ()
        while True:
            _, _, alt, keep, step, stay, pop, claim, *sched = await ctx.tick().sample(
                p.alt, p.keep, p.step, p.stay, p.pop, p.claim, *extra)
            sel = shown if keep else alt
            assert not (step or stay) or sel == shown, f"queue {sel}: a descriptor after the first named while queue " \
                                                      f"{shown} is shown"
            idx = 0 if pop else shown_idx + 1 if step else shown_idx if stay else 0
            if self.scheduled:
                assert not claim or self.held == shown, f"queue {shown}: claimed by an engine that does not have it"
            if claim:
                assert room[shown], f"queue {shown}: a chain started without a completion slot"
                self.claims.append(shown)
            if pop:
                self.pops.append((shown, self.chains[shown].pop(0)))
            if self.scheduled:
                release, taken, offered = sched
                if release:
                    assert self.held == shown, f"queue {shown} given back by an engine that does not have it"
                    self.held = None
                    if self.chains[shown]:
                        if room[shown]:
                            self.fifo.append(shown)
                        else:
                            self.parked.add(shown)
                if taken and offered:
                    assert self.held is None, f"queue {self.fifo[0]} taken while queue {self.held} is held"
                    self.held = self.fifo.pop(0)
                    assert sel == self.held, f"queue {sel} named, {self.held} taken"
            for q in range(self.n):
                if self.rng.random() < 0.05:
                    room[q] = self.rng.random() < 0.8
                if q in self.parked and room[q] and self.rng.random() < 0.3:
                    self.parked.discard(q)
                    self.fifo.append(q)
            shown, shown_idx = sel, idx
            self.show(ctx, room, shown, shown_idx)

    def show(self, ctx, room, shown, shown_idx):
        p = self.port
        ch = self.chain_of(shown)
        on = self.running >> shown & 1
        ctx.set(p.q, shown)
        ctx.set(p.at, shown_idx)
        ctx.set(p.running, on)
        ctx.set(p.ready, int(bool(on and ch is not None)))
        ctx.set(p.more, int(bool(on and len(self.chains[shown]) >= 2)))
        if self.scheduled:
            ctx.set(p.work.valid, int(bool(self.fifo)))
            ctx.set(p.work.payload, self.fifo[0] if self.fifo else 0)
        ctx.set(p.room, int(room[shown]))
        ctx.set(p.full, 0)
        if not self.scheduled:
            ctx.set(p.fetching, 0)
        ctx.set(p.cq, shown % 2)
        if ch is not None:
            ctx.set(p.len, len(ch["bufs"]))
            ctx.set(p.err, ch["err"])
            ctx.set(p.bytes, min(0xFFFF, sum(n for _, n in ch["bufs"])))
            ctx.set(p.head, ch["index"])
            a, n = ch["bufs"][shown_idx] if shown_idx < len(ch["bufs"]) else (0, 0)
            more = shown_idx < len(ch["bufs"]) - 1
            ctx.set(p.desc, {"addr": a, "len": n, "flags": int(more)})


@pytest.mark.parametrize("width", [64, 256])
def test_transmit_engine_sends_every_chain_once_in_order(width, seed):
    """The transmit engine alone: four queues of chains of one to three
    buffers (some refused by the descriptor checks, some longer than
    max_frame), completion slots that come and go, a DMA read model that
    stalls requests and data and answers late, a MAC that pauses often behind
    the smallest frame buffer, and a completion writer that pauses. Every chain is claimed once and popped
    once; every good chain's frame carries its buffers' bytes in order; every
    chain completes once, per queue in ring order, with its status and length;
    refused chains are never read; nothing is sent for them."""
    from rtl.queues.tx import TxEngine
    rng = random.Random(seed)
    # The smallest frame buffer allowed (two maximum frames) and a slow MAC,
    # so that chains wait for room and a frame admitted without it is lost.
    cfg = NicConfig(data_width=width, num_queues=4, desc_cache=8, max_frame=2000, tx_fifo=4096)
    WB, N = cfg.beat_bytes, cfg.num_queues
    m = Module()
    m.submodules.txe = txe = TxEngine(cfg)
    chains = {q: [] for q in range(N)}
    expected = {q: [] for q in range(N)}
    for q in range(N):
        index = 0
        for _ in range(25):
            bufs = [(0x10000 * (q + 1) + rng.randrange(0, 0x8000), rng.randint(1, 900))
                    for _ in range(rng.choice((1, 1, 2, 3)))]
            err = QueueStatus.PROTECTION if rng.random() < 0.1 else QueueStatus.OK
            total = sum(n for _, n in bufs)
            status = err if err else (QueueStatus.TOO_LONG if total > cfg.max_frame - 4 else QueueStatus.OK)
            chains[q].append({"bufs": bufs, "err": int(err), "index": index})
            expected[q].append((index, len(bufs), status, total if status == QueueStatus.OK else 0,
                                b"".join(_payload(a, n) for a, n in bufs)))
            index += len(bufs)
    model = _ChainModel(rng, txe.chain, N, chains, scheduled=True)
    reads = []
    frames, cpls = [], []

    group = []

    def read(cycle, rp):
        reads.append((rp.addr, rp.len))
        group.append(_payload(rp.addr, rp.len))
        if not rp.more:
            data = b"".join(group)
            group.clear()
            return cycle, data
        return None

    async def dma(ctx):
        await _dma_read_model(ctx, rng, txe.dma, read)

    cur = bytearray()

    def beat(p):
        cur.extend(p.data.to_bytes(WB, "little")[:p.nbytes])
        if p.last:
            frames.append(bytes(cur))
            cur.clear()

    async def mac(ctx):
        await sink(ctx, rng, txe.o_frame, 0.3, beat)

    async def writer(ctx):
        await sink(ctx, rng, txe.cpl, 0.5,
                    lambda p: cpls.append((p.queue, p.index, p.ndesc, QueueStatus(p.status), p.len, p.cq)))

    async def bench(ctx):
        total = sum(len(v) for v in expected.values())
        n_good = sum(1 for q in range(N) for e in expected[q] if e[2] == QueueStatus.OK)
        # A transmit chain completes once its frame is in the frame buffer;
        # the MAC takes the last frames after that.
        for _ in range(200_000):
            await ctx.tick()
            if len(cpls) == total and len(frames) == n_good:
                break
        assert len(cpls) == total, f"{len(cpls)} of {total} completions (seed {seed})"

    simulate(m, bench, model.run, dma, mac, writer)
    # Every chain claimed and popped once.
    assert sorted(model.claims) == sorted(q for q in range(N) for _ in expected[q]), "claims"
    for q in range(N):
        mine = [c for c in cpls if c[0] == q]
        want = [(q, i, nd, st, ln, q % 2) for i, nd, st, ln, _ in expected[q]]
        assert mine == want, f"queue {q} completions differ (seed {seed}): first {mine[:2]} vs {want[:2]}"
    good = [e for q in range(N) for e in expected[q] if e[2] == QueueStatus.OK]
    want_frames = sorted(e[4] for e in good)
    extra = [len(f) for f in frames if f not in want_frames]
    missing = [len(f) for f in want_frames if f not in frames]
    assert sorted(frames) == want_frames, \
        f"frames differ from the good chains' bytes (seed {seed}): extra {extra[:5]}, missing {missing[:5]}"
    assert len(reads) == sum(e[1] for e in good), "a refused or too-long chain was read"


@pytest.mark.parametrize("width", [64, 256])
def test_receive_engine_places_every_frame_in_its_queues_next_chain(width, seed):
    """The receive engine alone: frames for four queues (one disabled, one
    with no buffer ever posted) arrive with random gaps in the records and the
    bytes; chains of one to three buffers (some refused by the descriptor
    checks, some shorter than their frame); completion slots come and go; a
    DMA write model stalls requests and data and returns each request's status
    late. Each frame takes its queue's next chain: its bytes land in the
    chain's buffers in order (truncated to the chain), nothing is written for
    refused chains or dropped frames, every chain completes once, in ring
    order, with its status and length, drops are counted by reason, and every
    write status is taken the cycle it comes."""
    from rtl.queues.rx import RxEngine
    rng = random.Random(seed)
    cfg = NicConfig(data_width=width, num_queues=4, desc_cache=8)
    WB, N = cfg.beat_bytes, cfg.num_queues
    DISABLED, EMPTY = 3, 2
    m = Module()
    m.submodules.rxe = rxe = RxEngine(cfg)
    chains = {q: [] for q in range(N)}
    for q in (0, 1):
        index = 0
        for _ in range(30):
            bufs = [(0x100000 * (q + 1) + 0x1000 * len(chains[q]) + rng.randrange(0, 64), rng.randint(1, 700))
                    for _ in range(rng.choice((1, 1, 2, 3)))]
            err = QueueStatus.PROTECTION if rng.random() < 0.1 else QueueStatus.OK
            chains[q].append({"bufs": bufs, "err": int(err), "index": index})
            index += len(bufs)
    posted = {q: list(chains[q]) for q in range(N)}
    frames = []                               # (queue, bytes)
    for k in range(60):
        q = rng.choice((0, 0, 1, 1, 1, EMPTY, DISABLED))
        frames.append((q, bytes(rng.getrandbits(8) for _ in range(rng.randint(60, 1500)))))
    # What each frame should do, in order.
    expect_cpl = {q: [] for q in range(N)}
    expect_mem = {}
    drops = {"no_buf": 0, "disabled": 0}
    taken = {q: 0 for q in range(N)}
    for q, body in frames:
        if q == DISABLED:
            drops["disabled"] += 1
            continue
        if taken[q] == len(posted[q]):
            drops["no_buf"] += 1
            continue
        ch = posted[q][taken[q]]
        taken[q] += 1
        total = sum(n for _, n in ch["bufs"])
        if ch["err"]:
            expect_cpl[q].append((ch["index"], len(ch["bufs"]), QueueStatus(ch["err"]), 0))
            continue
        n = min(total, len(body))
        expect_cpl[q].append((ch["index"], len(ch["bufs"]), QueueStatus.OK if len(body) <= total
                              else QueueStatus.TRUNCATED, n))
        pos = 0
        for a, ln in ch["bufs"]:
            for i in range(min(ln, n - pos)):
                expect_mem[a + i] = body[pos + i]
            pos += min(ln, n - pos)
    model = _ChainModel(rng, rxe.chain, N, chains, running=(1 << N) - 1 - (1 << DISABLED))
    memory, cpls = {}, []
    counts = {"no_buf": 0, "disabled": 0, "cq_full": 0}

    async def source(ctx):
        meta, fr = rxe.i_meta, rxe.i_frame
        metas = list(frames)
        beats = [(body[i:i + WB], i + WB >= len(body)) for _, body in frames for i in range(0, len(body), WB)]
        mi = bi = 0
        while True:
            mv = mi < len(metas) and rng.random() < 0.8
            bv = bi < len(beats) and rng.random() < 0.8
            ctx.set(meta.valid, int(mv))
            if mv:
                ctx.set(meta.payload.queue, metas[mi][0])
                ctx.set(meta.payload.length, len(metas[mi][1]))
            ctx.set(fr.valid, int(bv))
            if bv:
                chunk, last = beats[bi]
                ctx.set(fr.payload.data, int.from_bytes(chunk, "little"))
                ctx.set(fr.payload.nbytes, len(chunk))
                ctx.set(fr.payload.last, int(last))
            _, _, mr, br, nb, dis, cqf = await ctx.tick().sample(meta.ready, fr.ready, rxe.no_buf, rxe.disabled,
                                                                 rxe.cq_full)
            mi += mv and mr
            bi += bv and br
            counts["no_buf"] += nb
            counts["disabled"] += dis
            counts["cq_full"] += cqf

    async def dma(ctx):
        req, dat, resp = rxe.dma.req, rxe.dma.data, rxe.dma.resp
        reqs, group_bytes, owed = [], bytearray(), []
        cycle = 0
        while True:
            cycle += 1
            ctx.set(req.ready, int(rng.random() < 0.6))
            ctx.set(dat.ready, int(rng.random() < 0.7))
            due = owed and owed[0] <= cycle
            ctx.set(resp.valid, int(bool(due)))
            ctx.set(resp.payload.status, 0)
            _, _, rv, rr, rp, dv, dr, dp, sv, sr = await ctx.tick().sample(
                req.valid, req.ready, req.payload, dat.valid, dat.ready, dat.payload, resp.valid, resp.ready)
            if sv:
                assert sr, "a write status was not taken the cycle it came"
                owed.pop(0)
            if rv and rr:
                reqs.append((rp.addr, rp.len, rp.more))
            if dv and dr:
                group_bytes += dp.data.to_bytes(WB, "little")[:dp.nbytes]
                if dp.last:
                    # The group's requests take its bytes in order.
                    pos = 0
                    print("GROUP", len(group_bytes), reqs, cycle)
                    while reqs:
                        a, ln, more = reqs.pop(0)
                        for i in range(ln):
                            memory[a + i] = group_bytes[pos + i]
                        pos += ln
                        owed.append(cycle + rng.randint(1, 20))
                        if not more:
                            break
                    assert pos == len(group_bytes), f"a group of {len(group_bytes)} bytes for {pos} requested"
                    group_bytes = bytearray()

    async def writer(ctx):
        await sink(ctx, rng, rxe.cpl, 0.5,
                    lambda p: cpls.append((p.queue, p.index, p.ndesc, QueueStatus(p.status), p.len)))

    async def bench(ctx):
        ctx.set(rxe.backpressure, 0)
        total = sum(len(v) for v in expect_cpl.values())
        for _ in range(300_000):
            await ctx.tick()
            if len(cpls) == total and counts["no_buf"] + counts["disabled"] == sum(drops.values()):
                break
        for _ in range(200):
            await ctx.tick()
        assert len(cpls) == total, (f"{len(cpls)} of {total} completions (seed {seed}); drops {counts} of {drops}; "
                                    f"per queue {[len([c for c in cpls if c[0] == q]) for q in range(N)]} of "
                                    f"{[len(expect_cpl[q]) for q in range(N)]}")

    simulate(m, bench, model.run, source, dma, writer)
    for q in range(N):
        mine = [c[1:] for c in cpls if c[0] == q]
        assert mine == expect_cpl[q], f"queue {q} completions differ (seed {seed}): {mine[:3]} vs {expect_cpl[q][:3]}"
    assert memory == expect_mem, f"bytes written differ from the frames' (seed {seed})"
    assert counts == {**drops, "cq_full": 0}, f"drops counted {counts}, expected {drops}"
    assert len(model.claims) == sum(len(v) for v in expect_cpl.values()), "one claim per chain"


def _random_tlps(rng, n):
    """(hdr, payload, bar) of ``n`` TLPs: header-only, short, and longer than a chunk."""
    out = []
    for _ in range(n):
        size = rng.choice((0, 0, rng.randrange(1, 64), rng.randrange(64, 700)))
        out.append((rng.getrandbits(128), bytes(rng.getrandbits(8) for _ in range(size)), rng.randrange(8)))
    return out


@pytest.mark.parametrize("width", (64, 256))
def test_tlp_chunk_bridge_moves_every_tlp_both_ways_under_back_pressure(width, seed):
    """The simulation tops' chunk bridge: TLPs given as chunks leave as exactly
    the beats the beat-by-beat model would send, and beats from the NIC come
    back as chunks that rebuild the same TLPs; random idle cycles on every
    side, no rule broken."""
    from sim.chunks import ChunkCodec, TlpChunkBridge
    from sim.pcie import BeatCodec
    rng = random.Random(seed)
    dut = TlpChunkBridge(width)
    cc, bc = ChunkCodec(), BeatCodec(width)
    down = _random_tlps(rng, 60)
    up = _random_tlps(rng, 60)
    want_beats = [b for h, p, bar in down for b in bc.beats(h, p, bar)]
    got_beats, got_up = [], []
    done = {"down": False, "up": False}

    async def feed_chunks(ctx):
        await source(ctx, rng, dut.h2d, [c for h, p, bar in down for c in cc.chunks(h, p, bar)], 0.3)

    async def take_beats(ctx):
        while len(got_beats) < len(want_beats):
            ctx.set(dut.to_nic.ready, int(rng.random() < 0.7))
            _, _, v, r, p = await ctx.tick().sample(dut.to_nic.valid, dut.to_nic.ready, dut.to_nic.payload.as_value())
            if v and r:
                got_beats.append(p)
        done["down"] = True

    async def feed_beats(ctx):
        await source(ctx, rng, dut.from_nic, [b for h, p, _ in up for b in bc.beats(h, p, 0)], 0.3)

    async def take_chunks(ctx):
        cur = None
        while len(got_up) < len(up):
            ctx.set(dut.d2h.ready, int(rng.random() < 0.6))
            _, _, v, r, c = await ctx.tick().sample(dut.d2h.valid, dut.d2h.ready, dut.d2h.payload.as_value())
            if v and r:
                hdr, payload, sop, eop = cc.unpack(c)
                assert bool(sop) == (cur is None), "a chunk's sop must say whether it starts a TLP"
                cur = (hdr, bytearray()) if sop else cur
                cur[1].extend(payload)
                if eop:
                    got_up.append((cur[0], bytes(cur[1])))
                    cur = None
        done["up"] = True

    async def main(ctx):
        while not all(done.values()):
            await ctx.tick()
        assert ctx.get(dut.violations) == 0

    simulate(dut, main, feed_chunks, take_beats, feed_beats, take_chunks)
    assert got_beats == want_beats
    assert got_up == [(h, p) for h, p, _ in up]


@pytest.mark.parametrize("bad", ("valid_fell", "sop_inside", "no_sop", "short_beat"))
def test_tlp_chunk_bridge_flags_each_broken_stream_rule(bad):
    """Each rule the bridge checks on the NIC's beats, broken once, sets its
    own sticky bit and no other."""
    from sim.chunks import VIOLATIONS, TlpChunkBridge
    from sim.pcie import BeatCodec
    dut = TlpChunkBridge(64)
    bc = BeatCodec(64)
    two = bc.beats(1, bytes(16))         # two full beats: sop, then eop
    want = {"valid_fell": 0, "sop_inside": 1, "no_sop": 2, "short_beat": 3}[bad]

    async def main(ctx):
        ctx.set(dut.d2h.ready, 1)
        if bad == "valid_fell":
            ctx.set(dut.d2h.ready, 0)
            for b in bc.beats(1, b"")[0], two[0]:     # the first is not taken; then it changes
                ctx.set(dut.from_nic.payload.as_value(), b)
                ctx.set(dut.from_nic.valid, 1)
                await ctx.tick()
            ctx.set(dut.from_nic.valid, 0)             # withdrawn before it was taken
        else:
            beats = {"sop_inside": [two[0], two[0]], "no_sop": [two[1]],
                     "short_beat": [bc.pack(1, 0, 4, 1, 0), two[1]]}[bad]
            for b in beats:
                ctx.set(dut.from_nic.payload.as_value(), b)
                ctx.set(dut.from_nic.valid, 1)
                await ctx.tick()
            ctx.set(dut.from_nic.valid, 0)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.violations) == 1 << want, f"{VIOLATIONS[want]}: got {ctx.get(dut.violations):#x}"

    simulate(dut, main)
