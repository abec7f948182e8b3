"""Queue owners isolated from each other, tried as a hostile user of an
OS-bypass NIC would: a completion queue left full or given a bogus consumer
index, queues destroyed and re-created under traffic and during fetches,
doorbells that move backwards, chains that never end, memory regions at the
top of the address space, poisoned completions. Each bad input is refused,
counted and reported, and every other queue keeps running."""

import random

import cocotb
import pytest

from host.driver import DriverError
from host.queues import Buffer
from rtl.queues.common import ERROR_CHAIN_TOO_LONG
from rtl.queues.layouts import DESC_BYTES, DescFlags, Descriptor, QueueKind, QueueStatus, pack
from rtl.regmap import DmaStatus
from sim.golden import Ledger, Region
from sim.testbench import PairTestbench

from .test_queues import Side, _seed, drain, make_frame

TOP = 1 << 64


async def pair(dut, **kw):
    tb = PairTestbench(dut, **kw)
    await tb.start()
    rng = random.Random(_seed())
    return tb, Side("A", tb.a, rng), Side("B", tb.b, rng)


async def own_queue(side, kind, i, cq, log_size=4, track=True):
    """Queue ``i`` of ``kind`` on ``side`` completing on ``cq`` (made if an int)."""
    nic = side.nic
    if isinstance(cq, int):
        cq = await nic.create_cq(cq, 8)
    if track:
        side.cqs[cq.index] = cq
    if kind == QueueKind.TX:
        q = side.tx[i] = await nic.create_tx_queue(i, log_size, cq)
    else:
        q = side.rx[i] = await nic.create_rx_queue(i, log_size, cq)
    side.model.queue(kind, i)
    return q


async def wait_for(tb, cond, limit=20_000, step=20, what="condition"):
    start = tb.cycle()
    while not await cond():
        assert tb.cycle() - start < limit, f"{what} not reached within {limit} cycles"
        await tb.wait_cycles(step)
    return tb.cycle() - start


def write_desc(q, slot, addr, length, more):
    q.ring.write((slot & (q.size - 1)) * DESC_BYTES,
                 pack(Descriptor, addr=addr, len=length, flags=DescFlags.MORE if more else 0))


# ------------------------------------------------------------------ isolation 1
@cocotb.test()
async def a_full_completion_queue_holds_only_its_own_queues(dut):
    """CQ 0 of NIC A is never drained: TX queue 0 stops when it is full, TX
    queue 1 runs at the rate it had before. On NIC B a receive queue whose CQ
    is full loses its frames (counted), with back-pressure on, and the other
    receive queue loses nothing. Bogus consumer indices are refused."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.nic.register_mr(0, 0, 1 << 31)
    await b.nic.register_mr(0, 0, 1 << 31)
    full_a = await a.nic.create_cq(0, 3)                     # 8 slots, never polled
    await own_queue(a, QueueKind.TX, 0, full_a, track=False)
    await own_queue(a, QueueKind.TX, 1, 1, log_size=6)
    full_b = await b.nic.create_cq(2, 1)                     # 2 slots, never polled
    await own_queue(b, QueueKind.RX, 2, full_b, track=False)
    await own_queue(b, QueueKind.RX, 0, 4, log_size=6)
    await own_queue(b, QueueKind.RX, 1, 5, log_size=6)
    await b.nic.write_fields("QUEUE_CONTROL", RX_BACKPRESSURE=1)
    ledger = Ledger()
    seq = 0

    async def burst(n):
        """n frames of 256 B on A's TX queue 1 to B's RX queue 1; cycles until all completed."""
        nonlocal seq
        for _ in range(n):
            await b.post_rx(1, [300], doorbell=False)
        await b.rx[1].doorbell()
        first = seq
        for _ in range(n):
            await a.send(1, make_frame(seq, 1, 1, 256, rng), doorbell=False, ledger=ledger, seq=seq)
            seq += 1
        t0 = tb.cycle()
        await a.tx[1].doorbell()
        await drain(tb, (a, b), ledger, until=lambda: all(s in ledger.received for s in range(first, seq)),
                    step=20)
        return tb.cycle() - t0

    before = await burst(40)
    # Fill A's CQ 0: 8 of 12 frames complete, 4 wait for slots.
    for _ in range(12):
        await b.post_rx(0, [300], doorbell=False)
    await b.rx[0].doorbell()
    for _ in range(12):
        await a.send(0, make_frame(seq, 0, 0, 200, rng), doorbell=False, ledger=ledger, seq=seq)
        seq += 1
    await a.tx[0].doorbell()
    # Fill B's CQ 2: two frames to RX queue 2 complete, three find no slot.
    for _ in range(5):
        await b.post_rx(2, [300], doorbell=False)
    await b.rx[2].doorbell()
    for _ in range(5):
        await a.send(1, make_frame(seq, 1, 2, 120, rng), doorbell=False, seq=seq)
        seq += 1
    await a.tx[1].doorbell()
    await wait_for(tb, lambda: _reads(a.nic, "CQ0_STATE", "PROD", 8), what="CQ 0 of A full")
    await wait_for(tb, lambda: _counter(b.nic, "RX_DROP_CQ_FULL", 3), what="3 frames dropped for CQ 2 of B")
    await drain(tb, (a, b), ledger, until=lambda: not a.model.outstanding().get((QueueKind.TX, 1)))
    await tb.wait_cycles(500)
    assert (await a.nic.read_fields("TXQ0_STATE"))["HEAD"] == 8, "TX queue 0 ran past its full CQ"
    assert (await b.nic.read_fields("CQ2_STATE"))["PROD"] == 2
    # Bogus consumer indices: ahead of what was written, and backwards.
    await a.nic.write_fields("CQ0_DB", CONS=9)
    await b.nic.write_fields("CQ2_DB", CONS=0xFFFF)
    await a.nic.write_fields("CQ1_DB", CONS=(a.cqs[1].cons + 100) & 0xFFFF)
    await tb.wait_cycles(50)
    assert (await a.nic.counters())["CQ_DB_IGNORED"] == 2 and (await b.nic.counters())["CQ_DB_IGNORED"] == 1
    assert (await a.nic.read_fields("CQ0_STATE"))["CONS"] == 0
    # With both full CQs held, queue 1 still runs at its earlier rate.
    during = await burst(40)
    tb.log.info("40 frames: %d cycles before, %d with CQs full on both NICs", before, during)
    assert during <= before * 1.1 + 100, f"queue 1 slowed from {before} to {during} cycles by another's full CQ"
    # Draining A's CQ 0 lets TX queue 0 finish; nothing was lost there.
    got = []
    for _ in range(20):
        got += await full_a.poll()
        if len(got) == 12:
            break
        await tb.wait_cycles(300)
    assert [c["index"] for c in got] == list(range(12)) and all(c["status"] == QueueStatus.OK for c in got), got
    for c in got:
        a.tx[0].completed(c)
        a.model.complete(c)
    recs = await full_b.poll()
    assert [c["queue"] for c in recs] == [2, 2]
    await drain(tb, (a, b), ledger)
    cb = await b.nic.counters()
    assert cb["RX_DROP_CQ_FULL"] == 3 and cb["RX_DROP_NO_BUF"] == 0 and cb["RX_DROP_OVERFLOW"] == 0, cb
    await tb.check_protocol()


async def _reads(nic, reg, field, value):
    return (await nic.read_fields(reg))[field] == value


async def _counter(nic, name, value):
    return (await nic.read(name)) == value


def _reads_fn(nic, reg, field, value):
    return lambda: _reads(nic, reg, field, value)


# ------------------------------------------------------------------ isolation 2
@cocotb.test()
async def a_receive_queue_destroyed_mid_frame_completes_on_its_own_cq(dut):
    """The completion queue is taken when the queue starts: destroying it while
    a frame is being scattered completes that frame on its own CQ, and destroy
    returns only once that completion has landed."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0])
    await b.nic.register_mr(0, 0, 1 << 31)
    await own_queue(b, QueueKind.RX, 0, 0)               # owner of CQ 0: must see nothing
    q2 = await own_queue(b, QueueKind.RX, 2, 5)
    await b.post_rx(2, [1600] * 6)
    first = b.rx[2].posted[0].buffers[0]
    frame = make_frame(0, 0, 2, 9000, rng)
    ledger = Ledger()
    await a.send(0, frame, ledger=ledger, seq=0)

    async def scattering():
        return b.rx_arena.read(first, 16) != b"\xee" * 16
    await wait_for(tb, scattering, step=4, what="the frame's first bytes in B's memory")
    await b.nic.destroy_queue(q2)
    state = await b.nic.read_fields("CQ5_STATE")
    assert state["PROD"] == 1, f"destroy returned before the completion was written: {state}"
    recs = await b.cqs[5].poll()
    assert len(recs) == 1 and recs[0]["queue"] == 2 and recs[0]["len"] == 9000, recs
    assert recs[0]["status"] == QueueStatus.OK
    assert not await b.cqs[0].poll(), "a completion of RX queue 2 landed in CQ 0"
    data = b"".join(b.rx_arena.read(x, x.length) for x in q2.completed(recs[0]).buffers)[:9000]
    assert data == frame
    await tb.check_protocol()


# ------------------------------------------------------------------ isolation 3
@cocotb.test()
async def recreating_a_queue_while_its_fetch_is_in_flight_never_runs_old_descriptors(dut):
    """Destroyed and re-created twice while a descriptor fetch is on its way
    back: the old ring's descriptors are never used, the new queue starts once
    the fetch is back, and runs."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0])
    await b.nic.register_mr(0, 0, 1 << 31)
    cq = await b.nic.create_cq(3, 8)
    b.cqs[3] = cq
    old = await own_queue(b, QueueKind.RX, 1, cq)
    tb.b.knobs.read_latency = 2000
    old_bufs = []
    for _ in range(4):
        await b.post_rx(1, [1600], doorbell=False)
        old_bufs += b.rx[1].posted[-1].buffers
    await old.doorbell()
    await tb.wait_cycles(100)                      # the fetch is out, its data 2000 cycles away
    nic = b.nic
    mid = nic.t.alloc_dma(16 << 4)
    await nic.write_fields("RXQ1_CTRL", ENABLE=0)
    await nic.write("RXQ1_BASE", mid.addr)
    await nic.write_fields("RXQ1_CTRL", ENABLE=1, LOG_SIZE=4, CQ=3)
    tb.b.knobs.read_latency = 0
    new = await own_queue(b, QueueKind.RX, 1, cq)  # the driver's create: ENABLE 0, BASE, ENABLE 1, wait
    ledger = Ledger()
    for s in range(4):
        await b.post_rx(1, [1600])
    for s in range(4):
        await a.send(0, make_frame(s, 0, 1, 500, rng), ledger=ledger, seq=s)
    await drain(tb, (a, b), ledger)
    for buf in old_bufs:
        assert b.rx_arena.read(buf, buf.length) == b"\xee" * buf.length, "a buffer of the old ring was written"
    assert new.head == new.tail == 4
    await tb.check_protocol()


@cocotb.test()
async def recreating_a_receive_queue_at_random_moments_under_traffic(dut):
    """Traffic to RX queue 1 while its owner destroys and re-creates it at
    random moments: every completion matches a chain of the incarnation it
    belongs to, every frame is delivered once or counted as dropped, and the
    queue works after each re-creation."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=6)
    await b.nic.register_mr(0, 0, 1 << 31)
    cq = await b.nic.create_cq(2, 10)
    b.cqs[2] = cq
    await own_queue(b, QueueKind.RX, 1, cq, log_size=5)
    ledger = Ledger()
    seq = 0
    for rnd in range(8):
        for _ in range(10):
            await b.post_rx(1, rng.choice(([1600], [700, 900])), doorbell=False)
        await b.rx[1].doorbell()
        for _ in range(14):
            await a.send(0, make_frame(seq, 0, 1, rng.randint(60, 1500), rng), doorbell=False,
                         ledger=ledger, seq=seq)
            seq += 1
        await a.tx[0].doorbell()
        await tb.wait_cycles(rng.randint(0, 3000))
        await b.nic.destroy_queue(b.rx[1])
        # Everything of this incarnation has landed: each completion matches a posted chain.
        await b.poll(ledger)
        await drain(tb, (a,), until=lambda: not a.model.outstanding())

        async def accounted(n=seq):
            c = await b.nic.counters()
            return c["RX_FRAMES"] + c["RX_DROP_DISABLED"] + c["RX_DROP_NO_BUF"] == n
        await wait_for(tb, accounted, what="every frame sent delivered or dropped")
        await b.poll(ledger)
        # Chains the NIC never reached are gone with the incarnation.
        b.rx[1].posted.clear()
        b.model.queues[(QueueKind.RX, 1)].chains.clear()
        await own_queue(b, QueueKind.RX, 1, cq, log_size=5)
        tb.log.info("round %d: %d frames sent, %d received", rnd, seq, len(ledger.received))
    # The last incarnation works.
    await b.post_rx(1, [1600])
    await a.send(0, make_frame(seq, 0, 1, 800, rng), ledger=ledger, seq=seq)
    await drain(tb, (a, b), ledger, until=lambda: seq in ledger.received)
    c = await b.nic.counters()
    dropped = c["RX_DROP_DISABLED"] + c["RX_DROP_NO_BUF"]
    assert len(ledger.received) + dropped == seq + 1, (len(ledger.received), c)
    await tb.check_protocol()


# ------------------------------------------------------------------ isolation 4
@cocotb.test()
async def doorbells_outside_fetched_to_head_plus_ring_are_ignored(dut):
    """A producer index below what the NIC has fetched (but not below the
    head), or more than a ring ahead of the head, is ignored and counted; the
    bounds themselves are taken."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=5)
    await b.setup(rx_queues=[3], log_size=3)
    q = b.rx[3]
    for _ in range(4):
        await b.post_rx(3, [300])
    await tb.wait_cycles(500)                            # all four fetched
    await b.nic.write_fields("RXQ3_DB", TAIL=2)          # below the 4 fetched
    await tb.wait_cycles(100)
    assert (await b.nic.read_fields("RXQ3_STATE"))["TAIL"] == 4
    assert (await b.nic.counters())["DB_IGNORED"] == 1
    ledger = Ledger()
    for s in range(6):
        await a.send(0, make_frame(s, 0, 3, 100, rng), seq=s, ledger=ledger if s < 4 else None)
    await drain(tb, (a, b), ledger)
    await tb.wait_cycles(300)
    c = await b.nic.counters()
    assert c["RX_FRAMES"] == 4 and c["RX_DROP_NO_BUF"] == 2, c
    assert q.head == q.tail == 4 and not await b.cqs[b.nic.build["num_queues"] + 3].poll()
    # Limits: the head plus the ring size is taken, one more is not.
    for _ in range(8):
        await b.post_rx(3, [300], doorbell=False)
    await b.nic.write_fields("RXQ3_DB", TAIL=(q.head + 9) & 0xFFFF)
    await q.doorbell()                                   # head + 8
    await tb.wait_cycles(100)
    assert (await b.nic.read_fields("RXQ3_STATE"))["TAIL"] == 12
    assert (await b.nic.counters())["DB_IGNORED"] == 2
    for s in range(10, 18):
        await a.send(0, make_frame(s, 0, 3, 100, rng), seq=s, ledger=ledger)
    await drain(tb, (a, b), ledger)
    await tb.check_protocol()


# ------------------------------------------------------------------ isolation 5
@cocotb.test()
async def a_chain_that_cannot_end_faults_its_queue_only(dut):
    """A ring full of descriptors that all carry MORE, or a chain longer than
    the descriptor cache (posted at once, or in two parts with the cache
    nearly full in between), faults its queue with a status; chains exactly
    as long as the ring and as the cache are sent; other queues keep
    running."""
    tb, a, b = await pair(dut)
    rng = a.rng
    d = a.nic.build["desc_cache"]
    await a.setup(tx_queues=[0, 2, 4], log_size=3)
    a.tx[4] = await a.nic.create_tx_queue(4, 7, a.cqs[4])      # 128 entries, for cache-sized chains
    await b.setup(rx_queues=[0], log_size=5)
    for _ in range(12):
        await b.post_rx(0, [2000])
    ledger = Ledger()
    # At the limits: a chain of 8 in a ring of 8, a chain of desc_cache.
    await a.send(2, make_frame(0, 2, 0, 400, rng), pieces=8, ledger=ledger, seq=0)
    await a.send(4, make_frame(1, 4, 0, 400, rng), pieces=d, ledger=ledger, seq=1)
    await drain(tb, (a, b), ledger)
    # A ring of 8 descriptors, all with MORE.
    q = a.tx[2]
    buf = a.tx_arena.take(64)
    for k in range(8):
        write_desc(q, q.tail + k, buf.addr, 64, more=True)
    await a.nic.write_fields("TXQ2_DB", TAIL=(q.tail + 8) & 0xFFFF)
    await wait_for(tb, _reads_fn(a.nic, "TXQ2_ERROR", "CODE", ERROR_CHAIN_TOO_LONG), what="TX queue 2 faulted")
    # A chain of desc_cache + 1 descriptors in a larger ring.
    q = a.tx[4]
    for k in range(d + 1):
        write_desc(q, q.tail + k, buf.addr, 64, more=k < d)
    await a.nic.write_fields("TXQ4_DB", TAIL=(q.tail + d + 1) & 0xFFFF)
    await wait_for(tb, _reads_fn(a.nic, "TXQ4_ERROR", "CODE", ERROR_CHAIN_TOO_LONG), what="TX queue 4 faulted")
    # A chain longer than the cache rung in two parts: the second doorbell
    # comes while the cache already holds most of the first, with too little
    # room left for a regular fetch (and no complete chain whose pop would
    # make room): what fits is fetched, and the queue faults.
    a.cqs[6] = await a.nic.create_cq(6, 8)
    q = a.tx[6] = await a.nic.create_tx_queue(6, 7, a.cqs[6])
    first = d - 3
    for k in range(first):
        write_desc(q, q.tail + k, buf.addr, 64, more=True)
    await a.nic.write_fields("TXQ6_DB", TAIL=(q.tail + first) & 0xFFFF)
    await tb.wait_cycles(2000)
    assert (await a.nic.read_fields("TXQ6_ERROR"))["CODE"] == 0, "a chain shorter than the cache faulted"
    for k in range(first, first + 8):
        write_desc(q, q.tail + k, buf.addr, 64, more=k < first + 7)
    await a.nic.write_fields("TXQ6_DB", TAIL=(q.tail + first + 8) & 0xFFFF)
    await wait_for(tb, _reads_fn(a.nic, "TXQ6_ERROR", "CODE", ERROR_CHAIN_TOO_LONG), what="TX queue 6 faulted")
    assert (await a.nic.counters())["QUEUE_FAULTS"] == 3
    # Queue 0 runs on.
    for s in range(2, 6):
        await a.send(0, make_frame(s, 0, 0, 300, rng), ledger=ledger, seq=s)
    await drain(tb, (a, b), ledger, until=lambda: not ledger.missing())
    await tb.check_protocol()


# ------------------------------------------------------------------ isolation 6
@cocotb.test()
async def memory_regions_are_checked_at_their_ends_and_never_wrap(dut):
    """A region running past 2**64 matches nothing; a buffer is accepted
    exactly up to a region's ends and refused one byte beyond either."""
    tb, a, b = await pair(dut)
    rng = a.rng
    nic = b.nic
    base = b.rx_arena.buf.addr + 4096
    ok_region = Region(base, 65536, pd=0, read=False, write=True)
    b.model.regions = [ok_region]
    await b.setup(rx_queues=[0], log_size=4, regions=[(0, ok_region)])
    await a.setup(tx_queues=[0], log_size=4)
    with pytest.raises(DriverError, match="runs past the 64-bit address space"):
        await nic.register_mr(1, TOP - 4096, 8192)
    # The same region written by hand: the NIC refuses it.
    await nic.write("MR1_BASE", TOP - 4096)
    await nic.write("MR1_LEN", 8192)
    await nic.write_fields("MR1_CTRL", ENABLE=1, WRITE=1, PD=0)
    bufs = [Buffer(TOP - 2048, 1600),                        # inside the wrapping region: refused
            Buffer(base, 1600),                              # at the region's start
            Buffer(base + 65536 - 1600, 1600),               # ending at its end
            Buffer(base - 1, 1600),                          # one byte before it
            Buffer(base + 65536 - 1599, 1600)]               # one byte past it
    for x in bufs:
        await q_post(b, 0, x)
    ledger = Ledger()
    for s in range(5):
        await a.send(0, make_frame(s, 0, 0, 200, rng), ledger=ledger if s in (1, 2) else None, seq=s)
    recs = await drain(tb, (a, b), until=lambda: not b.model.outstanding())
    rx = [r["status"] for r in recs if r["kind"] == QueueKind.RX]
    assert rx == [QueueStatus.PROTECTION, QueueStatus.OK, QueueStatus.OK, QueueStatus.PROTECTION,
                  QueueStatus.PROTECTION], rx
    assert (await nic.counters())["DESC_ERR_PROTECTION"] == 3
    await tb.check_protocol()


async def q_post(side, i, buf):
    await side.rx[i].post([buf])
    side.model.post(QueueKind.RX, i, [(buf.addr, buf.length)])


# ------------------------------------------------------------------ isolation 7
@cocotb.test()
async def poisoned_completions_fail_the_request_and_are_counted(dut):
    """A poisoned descriptor fetch faults the queue with POISONED; a poisoned
    payload read completes the frame with DMA_ERROR and sends nothing."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0, 1], log_size=4)
    await b.setup(rx_queues=[0], log_size=5)
    for _ in range(8):
        await b.post_rx(0, [2000])
    ring0 = a.tx[0].ring.addr
    targets = {ring0}
    hits = []

    def hook(req):
        if req["addr"] in targets:
            targets.discard(req["addr"])
            hits.append(req["addr"])
            return "poison"
        return None
    tb.a.knobs.fault = hook
    await a.tx[0].send([a.tx_arena.take(100)])
    await wait_for(tb, _reads_fn(a.nic, "TXQ0_ERROR", "CODE", DmaStatus.POISONED), what="TX queue 0 faulted")
    assert hits == [ring0]
    c = await a.nic.counters()
    assert c["ERR_CPL_POISONED"] == 1 and c["QUEUE_FAULTS"] == 1 and c["TX_FRAMES"] == 0, c
    # Queue 1: its second frame's payload comes back poisoned.
    ledger = Ledger()
    frames = [make_frame(s, 1, 0, 300, rng) for s in range(3)]
    await a.send(1, frames[0], ledger=ledger, seq=0)
    await drain(tb, (a, b), ledger)
    buf = a.tx_arena.take(300)
    a.tx_arena.write(buf, frames[1])
    targets.add(buf.addr)
    await a.tx[1].send([buf])
    await a.send(1, frames[2], ledger=ledger, seq=2)
    got = []
    for _ in range(50):
        got += await a.cqs[1].poll()
        if len(got) == 2:
            break
        await tb.wait_cycles(200)
    assert [x["status"] for x in got] == [QueueStatus.DMA_ERROR, QueueStatus.OK], got
    await drain(tb, (b,), ledger, until=lambda: not ledger.missing())
    c = await a.nic.counters()
    assert c["ERR_CPL_POISONED"] == 2 and c["TX_FRAMES"] == 2, c
    assert (await b.nic.counters())["RX_FRAMES"] == 2
    await tb.check_protocol()


# ------------------------------------------------------------------ reset
@cocotb.test()
async def a_soft_reset_leaves_no_queue_running_on_its_old_state(dut):
    """A receive queue with buffers posted, then a soft reset of the whole
    NIC: the queue state memories keep their contents through it, yet
    afterwards no queue or completion queue reads as running, a frame for the
    old receive queue is dropped as for a disabled queue (its old buffers are
    never written), and queues created afresh run. (The sweep that covers the
    first cycles after a reset is tested at block level,
    ``test_descriptor_queues_start_afresh_after_a_reset``.)"""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0])
    await b.setup(rx_queues=[2])
    await b.post_rx(2, [1600] * 4)
    old_bufs = [x for p in b.rx[2].posted for x in p.buffers]
    await b.nic.soft_reset()
    await tb.wait_cycles(200)
    err = await b.nic.read_fields("RXQ2_ERROR")
    assert err["ACTIVE"] == 0 and err["DRAINING"] == 0, f"RXQ2 after a soft reset: {err}"
    st = await b.nic.read_fields(f"CQ{b.rx[2].cq.index}_STATUS")
    assert st["ACTIVE"] == 0, f"its completion queue after a soft reset: {st}"
    await a.send(0, make_frame(0, 0, 2, 200, rng), seq=0)
    await drain(tb, (a,), until=lambda: not a.model.outstanding())
    await tb.wait_cycles(300)
    c = await b.nic.counters()
    assert c["RX_DROP_DISABLED"] == 1, c
    for buf in old_bufs:
        assert b.rx_arena.read(buf, buf.length) == b"\xee" * buf.length, "a buffer posted before the reset was written"
    # Set up again from scratch: it runs.
    b.rx.clear()
    b.cqs.clear()
    await b.setup(rx_queues=[2])
    await b.post_rx(2, [1600])
    ledger = Ledger()
    await a.send(0, make_frame(1, 0, 2, 300, rng), ledger=ledger, seq=1)
    await drain(tb, (a, b), ledger)
    await tb.check_protocol()


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import config_for  # noqa: E402

CASES = {
    "cq_full": "a_full_completion_queue_holds_only_its_own_queues",
    "recreate": "a_receive_queue_destroyed_mid_frame_completes_on_its_own_cq"
                "|recreating_a_queue_while_its_fetch_is_in_flight_never_runs_old_descriptors"
                "|recreating_a_receive_queue_at_random_moments_under_traffic",
    "inputs": "doorbells_outside_fetched_to_head_plus_ring_are_ignored"
              "|a_chain_that_cannot_end_faults_its_queue_only"
              "|memory_regions_are_checked_at_their_ends_and_never_wrap"
              "|poisoned_completions_fail_the_request_and_are_counted",
    "reset": "a_soft_reset_leaves_no_queue_running_on_its_old_state",
}
PARAMS = [(64, k) for k in CASES] + [(256, "cq_full")]


@pytest.mark.parametrize("width, case", PARAMS, ids=[f"{w}-{c}" for w, c in PARAMS])
def test_isolation(width, case, seed):
    run_cocotb("cocotb_tests.test_isolation", config_for(width), top="ptlnic_pair", testcase=CASES[case].split("|"),
               name=f"test_isolation-w{width}-{case}", env={"PTLNIC_SEED": str(seed)})
