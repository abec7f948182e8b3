"""Descriptor rings, completions and the Ethernet port between two NICs: every
completion is held against the plain-Python ring model in ``sim.golden``, and
every frame's bytes against what was sent (``Ledger``: nothing lost, nothing
duplicated, order kept per queue pair)."""

import os
import random
import struct

import cocotb
from cocotb.triggers import SimTimeoutError, with_timeout
import pytest

from host.queues import Buffer, QueueFull
from rtl.queues.layouts import QueueKind, QueueStatus
from sim.debug import dump
from sim.golden import Ledger, NicModel, Region
from sim.pcie import _req_addr
from sim.wire import eth_fcs, eth_frame, read_pcap
from sim.testbench import PairTestbench

ETHERTYPE = 0x88B5   # local experimental
ALL = Region(0, 1 << 31, pd=0, read=True, write=True)


def _seed():
    return int(os.environ.get("PTLNIC_SEED", "1"))


def make_frame(seq, src_q, dst_q, length, rng):
    """A test frame: to RX queue ``dst_q`` (last address byte), numbered ``seq``."""
    payload = struct.pack(">I", seq) + bytes(rng.randrange(256) for _ in range(max(0, length - 18)))
    return eth_frame([2, 0, 0, 0, 0, dst_q], [2, 0, 0, 0, 1, src_q], ETHERTYPE, payload)


def frame_seq(frame):
    return struct.unpack_from(">I", frame, 14)[0]


class Arena:
    """A circular bump allocator over one big DMA buffer."""

    def __init__(self, transport, size):
        self.buf = transport.alloc_dma(size)
        self.pos = 0

    def take(self, n, align=1):
        self.pos = -(-self.pos // align) * align
        if self.pos + n > self.buf.size:
            self.pos = 0
        b = Buffer(self.buf.addr + self.pos, n)
        self.pos += n
        return b

    def write(self, b, data):
        self.buf.write(b.addr - self.buf.addr, data)

    def read(self, b, n):
        return self.buf.read(b.addr - self.buf.addr, n)


class Side:
    """One NIC with its model, queues and buffers."""

    def __init__(self, name, host, rng, regions=(ALL,)):
        self.name = name
        self.host = host
        self.nic = host.nic
        self.rng = rng
        self.model = NicModel(name, self.nic.build["num_queues"], regions, self.nic.build["max_frame"])
        self.tx, self.rx, self.cqs = {}, {}, {}
        self.tx_arena = Arena(host.transport, 4 << 20)
        self.rx_arena = Arena(host.transport, 4 << 20)
        self.pending_rx = {}     # RX completions read back but not yet checked

    def default_cq(self, kind, i):
        """Transmit queue i completes on CQ i, receive queue i on CQ num_queues + i
        (both modulo the CQs there are)."""
        b = self.nic.build
        return (i if kind == QueueKind.TX else b["num_queues"] + i) % b["num_cqs"]

    async def setup(self, tx_queues=(), rx_queues=(), log_size=4, cq_of=None, regions=((0, ALL),), **cq_kw):
        for k, r in regions:
            await self.nic.register_mr(k, r.addr, r.length, pd=r.pd, read=r.read, write=r.write)
        cq_of = cq_of or self.default_cq
        for kind, qs in ((QueueKind.TX, tx_queues), (QueueKind.RX, rx_queues)):
            for i in qs:
                j = cq_of(kind, i)
                if j not in self.cqs:
                    self.cqs[j] = await self.nic.create_cq(j, 8, **cq_kw)
                if kind == QueueKind.TX:
                    self.tx[i] = await self.nic.create_tx_queue(i, log_size, self.cqs[j])
                else:
                    self.rx[i] = await self.nic.create_rx_queue(i, log_size, self.cqs[j])
                self.model.queue(kind, i)

    async def send(self, q, frame, pieces=1, doorbell=True, ledger=None, seq=None):
        """Post ``frame`` on TX queue ``q``, gathered from ``pieces`` buffers."""
        cuts = sorted(self.rng.sample(range(1, len(frame)), pieces - 1)) if pieces > 1 else []
        bufs = []
        for lo, hi in zip([0] + cuts, cuts + [len(frame)]):
            b = self.tx_arena.take(hi - lo + self.rng.randrange(8))
            b = Buffer(b.addr + (b.length - (hi - lo)), hi - lo)
            self.tx_arena.write(b, frame[lo:hi])
            bufs.append(b)
        await self.tx[q].send(bufs, cookie=seq, doorbell=doorbell)
        self.model.post(QueueKind.TX, q, [(b.addr, b.length) for b in bufs], cookie=seq)
        if ledger is not None and seq is not None:
            ledger.send(seq, (self.name, q), frame)

    async def post_rx(self, q, sizes, doorbell=True):
        bufs = [self.rx_arena.take(n, align=1 + self.rng.randrange(4)) for n in sizes]
        for b in bufs:
            self.rx_arena.write(b, b"\xee" * b.length)
        await self.rx[q].post(bufs, doorbell=doorbell)
        self.model.post(QueueKind.RX, q, [(b.addr, b.length) for b in bufs])

    async def diagnose(self):
        """The NIC's view of its queues, for failure messages."""
        nic = self.nic
        out = {"counters": {k: v for k, v in (await nic.counters()).items() if v},
               "status": await nic.read_fields("STATUS")}
        for kind, qs in (("TXQ", self.tx), ("RXQ", self.rx)):
            for i in qs:
                out[f"{kind}{i}"] = (await nic.read_fields(f"{kind}{i}_STATE"),
                                     (await nic.read_fields(f"{kind}{i}_ERROR"))["CODE"])
        for j in self.cqs:
            out[f"CQ{j}"] = (await nic.read_fields(f"CQ{j}_STATE"), await nic.read_fields(f"CQ{j}_STATUS"))
        return out

    async def poll(self, ledger=None):
        """Read every completion queue; check each completion against the model
        and each received frame against the ledger. Returns the completions."""
        out = []
        for cq in self.cqs.values():
            for c in await cq.poll():
                chain = self.model.complete(c)
                ring = (self.tx if c["kind"] == QueueKind.TX else self.rx)[c["queue"]]
                posted = ring.completed(c)
                if c["kind"] == QueueKind.RX and c["status"] in (QueueStatus.OK, QueueStatus.TRUNCATED) \
                        and ledger is not None:
                    data = b"".join(self.rx_arena.read(b, b.length) for b in posted.buffers)[:c["len"]]
                    seq = frame_seq(data)
                    ledger.receive(seq, c["queue"], data,
                                   truncated_to=c["len"] if c["status"] == QueueStatus.TRUNCATED else None)
                c["chain"] = chain
                out.append(c)
        return out


async def pair(dut, **kw):
    tb = PairTestbench(dut, **kw)
    await tb.start()
    rng = random.Random(_seed())
    return tb, Side("A", tb.a, rng), Side("B", tb.b, rng)


async def drain(tb, sides, ledger=None, until=None, limit=200_000, step=200):
    """Poll until ``until()`` holds (default: no chain left outstanding)."""
    until = until or (lambda: all(not s.model.outstanding() or all(k[0] == QueueKind.RX for k in s.model.outstanding())
                                  for s in sides) and (ledger is None or not ledger.missing()))
    got = []
    for _ in range(limit // step):
        for s in sides:
            got += await s.poll(ledger)
        if until():
            return got
        await tb.wait_cycles(step)
    for s in sides:
        try:
            tb.log.error("NIC %s: %s", s.name, await with_timeout(s.diagnose(), 200, "us"))
        except SimTimeoutError:
            tb.log.error("NIC %s does not answer MMIO reads; link: %s", s.name, s.host.dev.link_state())
        if os.environ.get("PTLNIC_VISIBLE"):      # a model with internal signals: show the handshakes
            busy = r"valid|ready|locked|owner|busy|started|sending|level|state"
            for line in dump(getattr(tb.dut, f"nic_{s.name.lower()}"), os.environ.get("PTLNIC_DUMP", busy)):
                tb.log.error("  %s", line)
    raise AssertionError(f"traffic did not finish within {limit} cycles: outstanding "
                         f"{[s.model.outstanding() for s in sides]}, missing frames "
                         f"{ledger.missing()[:10] if ledger else None}")


# ----------------------------------------------------------------------- tests
@cocotb.test()
async def frames_cross_with_scatter_gather_and_ring_wrap(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=3)          # 8-entry rings: they wrap many times
    await b.setup(rx_queues=[1], log_size=3)
    ledger = Ledger()
    seq = 0
    for rnd in range(25):
        chains = 0
        while chains < 3:
            sizes = ([rng.choice((64, 100, 700, 1600))] if rng.random() < 0.5
                     else [rng.randint(20, 300) for _ in range(rng.randint(1, 2))] + [1600])
            if b.rx[1].free < len(sizes):
                break
            await b.post_rx(1, sizes)
            chains += 1
        for _ in range(chains):
            frame = make_frame(seq, 0, 1, rng.choice((40, 60, 61, 100, 333, 1000, 1514)), rng)
            await a.send(0, frame, pieces=rng.randint(1, min(3, a.tx[0].free)), ledger=ledger, seq=seq)
            seq += 1
        await drain(tb, (a, b), ledger)
    assert not ledger.missing()
    c = await b.nic.counters()
    assert c["RX_FRAMES"] == seq and not c["RX_DROP_NO_BUF"], c
    assert b.rx[1].head == b.rx[1].tail, "every posted chain completed"
    await tb.check_protocol()


@cocotb.test()
async def many_queues_both_ways_at_once(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    n = a.nic.build["num_queues"]
    shared_cq = lambda kind, i: 0 if kind == QueueKind.TX else 1 + i % 3   # noqa: E731  queues share CQs
    await a.setup(tx_queues=range(n), rx_queues=range(n), log_size=4, cq_of=shared_cq)
    await b.setup(tx_queues=range(n), rx_queues=range(n), log_size=4, cq_of=shared_cq)
    if n > 16:
        # Hundreds of queues: a frame whose buffers are still being fetched
        # (behind every other queue's) holds the receive buffer, so the link
        # is paused rather than frames dropped.
        for side in (a, b):
            await side.nic.write_fields("QUEUE_CONTROL", RX_BACKPRESSURE=1)
    ledger = Ledger()
    seq = 0
    for side in (a, b):
        for q in range(n):
            for _ in range(6):
                await side.post_rx(q, [1600], doorbell=False)
            await side.rx[q].doorbell()
    for side in (a, b):
        for q in range(n):
            for k in range(5):
                frame = make_frame(seq, q, (q + k) % n, rng.randint(60, 900), rng)
                await side.send(q, frame, pieces=rng.randint(1, 2), doorbell=False, ledger=ledger, seq=seq)
                seq += 1
    for side in (a, b):                               # all doorbells at once
        for q in range(n):
            await side.tx[q].doorbell()
    await drain(tb, (a, b), ledger, limit=200_000 + 4_000 * n)
    assert not ledger.missing() and len(ledger.received) == seq
    await tb.check_protocol()


@cocotb.test()
async def full_empty_and_bad_doorbells(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[2], log_size=3)
    await b.setup(rx_queues=[5], log_size=3)
    ledger = Ledger()
    # Fill the receive ring completely, then the transmit ring, one doorbell each.
    for _ in range(8):
        await b.post_rx(5, [200], doorbell=False)
    await b.rx[5].doorbell()
    for s in range(8):
        await a.send(2, make_frame(s, 2, 5, 120, rng), doorbell=False, ledger=ledger, seq=s)
    try:
        await a.send(2, make_frame(99, 2, 5, 120, rng), doorbell=False)
        raise AssertionError("the driver posted into a full ring")
    except QueueFull:
        pass
    await a.tx[2].doorbell()
    await drain(tb, (a, b), ledger)
    # An empty doorbell (tail unchanged) does nothing.
    await a.tx[2].doorbell()
    await tb.wait_cycles(500)
    st = await a.nic.read_fields("TXQ2_STATE")
    assert st["HEAD"] == st["TAIL"] == 8, st
    # A doorbell further ahead than the ring holds is ignored and counted.
    await a.nic.write_fields("TXQ2_DB", TAIL=(8 + 9) & 0xFFFF)
    await a.nic.write_fields("TXQ3_DB", TAIL=1)      # a queue that was never enabled
    await tb.wait_cycles(200)
    assert (await a.nic.read_fields("TXQ2_STATE"))["TAIL"] == 8
    assert (await a.nic.counters())["DB_IGNORED"] == 2
    await tb.check_protocol()


@cocotb.test()
async def interrupts_follow_the_moderation_rules(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=5, vector=1, mod_count=4, mod_time=0)
    await b.setup(rx_queues=[0], log_size=5, vector=2, mod_count=100, mod_time=600)
    t_a, t_b = a.host.transport, b.host.transport
    cq_a = a.cqs[0]
    cq_b = b.cqs[b.default_cq(QueueKind.RX, 0)]
    for _ in range(16):
        await b.post_rx(0, [1600], doorbell=False)
    await b.rx[0].doorbell()
    ledger = Ledger()
    # Count moderation: armed, three completions do not interrupt; the fourth does.
    await cq_a.arm()
    irq0 = t_a.irq_count(1)
    for s in range(3):
        await a.send(0, make_frame(s, 0, 0, 100, rng), ledger=ledger, seq=s)
    await tb.wait_cycles(1500)
    assert t_a.irq_count(1) == irq0, "interrupt before MOD_COUNT completions"
    await a.send(0, make_frame(3, 0, 0, 100, rng), ledger=ledger, seq=3)
    await tb.wait_cycles(1500)
    assert t_a.irq_count(1) == irq0 + 1, "no interrupt at MOD_COUNT completions"
    # Disarmed after it fired: more completions, no more interrupts until re-armed.
    await a.send(0, make_frame(4, 0, 0, 100, rng), ledger=ledger, seq=4)
    await tb.wait_cycles(1500)
    assert t_a.irq_count(1) == irq0 + 1
    # Time moderation on B: one completion, interrupt only after MOD_TIME cycles.
    await b.poll(ledger)
    await cq_b.arm()
    irq_b = t_b.irq_count(2)
    start = tb.cycle()
    await a.send(0, make_frame(5, 0, 0, 100, rng), ledger=ledger, seq=5)
    while t_b.irq_count(2) == irq_b:
        assert tb.cycle() - start < 5000, "no interrupt from the timer"
        await tb.wait_cycles(20)
    recs = await b.poll(ledger)
    assert recs, "an interrupt with no completion"
    waited = tb.cycle() - recs[-1]["timestamp"]
    assert waited >= 600, f"interrupt {waited} cycles after the completion, before MOD_TIME (600)"
    assert (await b.nic.counters())["CQ_IRQS"] == 1
    await drain(tb, (a, b), ledger)
    await tb.check_protocol()


@cocotb.test()
async def bad_frames_are_dropped_and_counted_never_delivered(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await b.setup(rx_queues=[0, 1], log_size=4)
    for q in (0, 1):
        for _ in range(6):
            await b.post_rx(q, [2000], doorbell=False)
        await b.rx[q].doorbell()
    ledger = Ledger()
    mf = b.nic.build["max_frame"]
    good = make_frame(1, 0, 1, 200, rng)
    ledger.send(1, ("inj", 0), good)
    bad_fcs = bytearray(good + eth_fcs(good))
    bad_fcs[30] ^= 0x10
    runt = make_frame(2, 0, 1, 40, rng)[:40]            # 40 + 4 bytes: a runt with a valid FCS
    big = make_frame(3, 0, 1, mf, rng)                  # mf + 4 bytes: one byte too long... and more
    for wire in (bytes(bad_fcs), runt + eth_fcs(runt), big + eth_fcs(big), good + eth_fcs(good)):
        await tb.inject["b"].send(wire)
    await drain(tb, (b,), ledger)
    c = await b.nic.counters()
    assert (c["RX_DROP_FCS"], c["RX_DROP_RUNT"], c["RX_DROP_OVERSIZE"], c["RX_FRAMES"]) == (1, 1, 1, 1), c
    await tb.check_protocol()


@cocotb.test()
async def no_buffer_drops_or_pauses_the_link(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=5)
    await b.setup(rx_queues=[3], log_size=5)
    ledger = Ledger()
    # Dropping (the default): nothing posted, frames are counted and dropped.
    for s in range(4):
        await a.send(0, make_frame(s, 0, 3, 300, rng), seq=s)
    await drain(tb, (a,), until=lambda: not a.model.outstanding())
    await tb.wait_cycles(300)
    c = await b.nic.counters()
    assert c["RX_DROP_NO_BUF"] == 4 and c["RX_FRAMES"] == 0, c
    # Back-pressure: frames wait for buffers; nothing is lost.
    await b.nic.write_fields("QUEUE_CONTROL", RX_BACKPRESSURE=1)
    for s in range(10, 22):
        await a.send(0, make_frame(s, 0, 3, rng.randint(60, 1500), rng), ledger=ledger, seq=s)
    await tb.wait_cycles(3000)
    assert (await b.nic.counters())["RX_FRAMES"] == 0
    for _ in range(12):
        await b.post_rx(3, [1600], doorbell=False)
        await b.rx[3].doorbell()
        await tb.wait_cycles(rng.randint(50, 400))
    await drain(tb, (a, b), ledger)
    c = await b.nic.counters()
    assert c["RX_FRAMES"] == 12 and c["RX_DROP_NO_BUF"] == 4 and c["RX_DROP_OVERFLOW"] == 0, c
    await tb.check_protocol()


@cocotb.test()
async def bad_descriptors_complete_with_errors_and_the_queue_keeps_running(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    # Domain 1 may only read the first 64 KiB of A's TX arena; B's domain 2 only
    # write the start of its RX arena.
    tx_ok = Region(a.tx_arena.buf.addr, 65536, pd=1, read=True, write=False)
    rx_ok = Region(b.rx_arena.buf.addr, 65536, pd=2, read=False, write=True)
    a.model.regions = [tx_ok]
    b.model.regions = [rx_ok]
    await a.setup(regions=[(0, tx_ok)])
    await b.setup(regions=[(0, rx_ok)])
    a.tx[0] = await a.nic.create_tx_queue(0, 4, await a.nic.create_cq(0, 6), pd=1)
    a.cqs[0] = a.tx[0].cq
    a.model.queue(QueueKind.TX, 0, pd=1)
    b.rx[0] = await b.nic.create_rx_queue(0, 4, await b.nic.create_cq(0, 6), pd=2)
    b.cqs[0] = b.rx[0].cq
    b.model.queue(QueueKind.RX, 0, pd=2)
    reads = []
    tb.a.dev.tx_observers.append(lambda ft, hdr, p: reads.append(hdr))
    ledger = Ledger()
    # Receive side: a chain with a buffer outside the domain takes a frame, writes nothing.
    bad_rx = b.rx_arena.take(1600)
    bad_rx = Buffer(bad_rx.addr + 70000, 1600)
    await b.rx[0].post([bad_rx])
    b.model.post(QueueKind.RX, 0, [(bad_rx.addr, bad_rx.length)])
    for _ in range(4):
        await b.post_rx(0, [1600])
    # Transmit side: good, outside the domain, zero length, good.
    await a.send(0, make_frame(0, 0, 0, 200, rng), seq=0)               # taken by the bad RX chain
    outside = Buffer(a.tx_arena.buf.addr + 200000, 100)
    await a.tx[0].send([outside])
    a.model.post(QueueKind.TX, 0, [(outside.addr, outside.length)])
    zero = a.tx_arena.take(10)
    await a.tx[0].send([Buffer(zero.addr, 0)])
    a.model.post(QueueKind.TX, 0, [(zero.addr, 0)])
    # A frame longer than max_frame (with its FCS): refused, not read.
    big = a.nic.build["max_frame"] // 2
    too_long = [Buffer(a.tx_arena.buf.addr + 30000, big), Buffer(a.tx_arena.buf.addr + 30000 + big, big - 3)]
    await a.tx[0].send(too_long)
    a.model.post(QueueKind.TX, 0, [(x.addr, x.length) for x in too_long])
    for s in (1, 2):
        await a.send(0, make_frame(s, 0, 0, 300, rng), ledger=ledger, seq=s)
    recs = await drain(tb, (a, b), ledger)
    tx = [r["status"] for r in recs if r["kind"] == QueueKind.TX]
    rx = [r["status"] for r in recs if r["kind"] == QueueKind.RX]
    assert tx == [QueueStatus.OK, QueueStatus.PROTECTION, QueueStatus.ZERO_LENGTH, QueueStatus.TOO_LONG,
                  QueueStatus.OK, QueueStatus.OK], tx
    assert rx[0] == QueueStatus.PROTECTION and rx[1:] == [QueueStatus.OK] * 2, rx
    # The refused buffers were never read.
    addrs = [_req_addr(h) for h in reads]
    assert outside.addr not in addrs, "a descriptor outside its domain was read"
    assert too_long[0].addr not in addrs, "a frame longer than max_frame was read"
    c_a, c_b = await a.nic.counters(), await b.nic.counters()
    assert c_a["DESC_ERR_PROTECTION"] == 1 and c_a["DESC_ERR_ZERO_LEN"] == 1 and c_a["TX_TOO_LONG"] == 1, c_a
    assert c_b["DESC_ERR_PROTECTION"] == 1, c_b
    await tb.check_protocol()


@cocotb.test()
async def disabled_queues_ignore_doorbells_and_drop_frames(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=4)
    await b.setup(rx_queues=[2], log_size=4)
    for _ in range(4):
        await b.post_rx(2, [1600])
    ledger = Ledger()
    await a.send(0, make_frame(0, 0, 2, 100, rng), ledger=ledger, seq=0)
    await drain(tb, (a, b), ledger)
    # RX queue 2 disabled: frames to it are dropped and counted.
    await b.nic.destroy_queue(b.rx[2])
    await a.send(0, make_frame(1, 0, 2, 100, rng), seq=1)
    await drain(tb, (a,), until=lambda: not a.model.outstanding())
    await tb.wait_cycles(300)
    assert (await b.nic.counters())["RX_DROP_DISABLED"] == 1
    # TX queue disabled: its doorbell is ignored.
    await a.nic.destroy_queue(a.tx[0])
    before = (await a.nic.counters())["DB_IGNORED"]
    await a.nic.write_fields("TXQ0_DB", TAIL=5)
    await tb.wait_cycles(100)
    assert (await a.nic.counters())["DB_IGNORED"] == before + 1
    # Re-created queues start over at index 0 and work.
    a.tx.clear(), b.rx.clear()
    a.model, b.model = NicModel("A", a.model.num_queues, [ALL]), NicModel("B", b.model.num_queues, [ALL])
    a.cqs.clear(), b.cqs.clear()
    await a.setup(tx_queues=[0], log_size=4)
    await b.setup(rx_queues=[2], log_size=4)
    await b.post_rx(2, [1600])
    await a.send(0, make_frame(2, 0, 2, 100, rng), ledger=ledger, seq=2)
    await drain(tb, (a, b), ledger)
    await tb.check_protocol()


@cocotb.test()
async def loopback_and_pcap_capture(dut):
    path = os.path.join(os.getcwd(), "loopback.pcap")
    tb, a, b = await pair(dut, loopback=True, capture=path)
    rng = a.rng
    await a.setup(tx_queues=[1], rx_queues=[1], log_size=4)
    for _ in range(8):
        await a.post_rx(1, [1600])
    ledger = Ledger()
    frames = []
    for s in range(6):
        f = make_frame(s, 1, 1, rng.randint(40, 1500), rng)
        frames.append(f)
        await a.send(1, f, pieces=2, ledger=ledger, seq=s)
    await drain(tb, (a,), ledger)
    assert (await b.nic.counters())["RX_FRAMES"] == 0, "loopback: B saw nothing"
    cap = read_pcap(path)
    assert [f for _, f in cap] == frames, "the capture differs from the frames sent"
    for _, n, wire in tb.capture.frames:
        assert n == "a" and eth_fcs(wire[:-4]) == wire[-4:], "bad FCS on the wire"
    await tb.check_protocol()


@cocotb.test()
async def soak_random_frames_queues_and_chains(dut):
    tb, a, b = await pair(dut)
    rng = a.rng
    dut._log.info("seed %d", _seed())
    n = a.nic.build["num_queues"]
    total = int(os.environ.get("PTLNIC_SOAK_FRAMES", "2000"))
    for side in (a, b):
        await side.setup(tx_queues=range(n), rx_queues=range(n), log_size=5,
                         cq_of=lambda kind, i: i % 4 + (0 if kind == QueueKind.TX else 4))
        # Lossless: a receiver that falls behind (its descriptors still being
        # fetched behind payload reads, bursts to one queue) pauses the link.
        await side.nic.write_fields("QUEUE_CONTROL", RX_BACKPRESSURE=1)
    ledger = Ledger()
    peer_of = {a.name: b, b.name: a}
    credit = {(s.name, q): 0 for s in (a, b) for q in range(n)}   # chains posted, not yet sent to
    seq = 0
    sent_by = {a.name: 0, b.name: 0}
    reported = 0
    while seq < total:
        # Keep every receive queue stocked with chains of one to three buffers.
        for side in (a, b):
            for q in range(n):
                while side.rx[q].free >= 4 and (side.rx[q].tail - side.rx[q].head) % 65536 < 12:
                    sizes = rng.choice(([1600], [800, 800], [rng.randint(64, 400), 600, 1000]))
                    await side.post_rx(q, sizes, doorbell=False)
                    credit[(side.name, q)] += 1
                await side.rx[q].doorbell()
        # Send a burst from random queues of both NICs.
        for _ in range(rng.randint(4, 24)):
            if seq >= total:
                break
            side = rng.choice((a, b))
            q = rng.randrange(n)
            # Senders keep to the receive buffers posted (as a flow-controlled
            # protocol would): no frame is dropped for want of a buffer.
            dests = [d for d in range(n) if credit[(peer_of[side.name].name, d)]]
            if side.tx[q].free < 3 or not dests:
                continue
            dq = rng.choice(dests)
            credit[(peer_of[side.name].name, dq)] -= 1
            length = rng.choice((rng.randint(40, 128), rng.randint(129, 1514), 1514))
            await side.send(q, make_frame(seq, q, dq, length, rng), pieces=rng.randint(1, 3),
                            doorbell=False, ledger=ledger, seq=seq)
            sent_by[side.name] += 1
            seq += 1
        for side in (a, b):
            for q in range(n):
                await side.tx[q].doorbell()
        await tb.wait_cycles(rng.randint(100, 1500))
        for side in (a, b):
            await side.poll(ledger)
        if seq >= reported + 500:
            reported = seq
            dut._log.info("soak: %d frames sent, %d received", seq, len(ledger.received))
    await drain(tb, (a, b), ledger)
    assert not ledger.missing(), ledger.missing()[:10]
    for side in (a, b):
        c = await side.nic.counters()
        drops = {k: v for k, v in c.items() if k.startswith(("RX_DROP", "DESC_ERR", "QUEUE_FAULT")) and v}
        assert not drops, f"{side.name}: {drops}"
    dut._log.info("soak done: %d frames, nothing lost or duplicated (seed %d)", seq, _seed())
    await tb.check_protocol()


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import LARGE, config_for  # noqa: E402

CASES = {
    "scatter": "frames_cross_with_scatter_gather_and_ring_wrap",
    "many": "many_queues_both_ways_at_once",
    "rings": "full_empty_and_bad_doorbells|disabled_queues_ignore_doorbells_and_drop_frames"
             "|loopback_and_pcap_capture",
    "irq": "interrupts_follow_the_moderation_rules",
    "errors": "bad_frames_are_dropped_and_counted_never_delivered"
              "|bad_descriptors_complete_with_errors_and_the_queue_keeps_running"
              "|no_buffer_drops_or_pauses_the_link",
    "soak": "soak_random_frames_queues_and_chains",
}
PARAMS = ([(64, k) for k in CASES] + [(256, "scatter"), (256, "irq"), (256, "soak")]
          + [("large", k) for k in ("scatter", "many", "rings", "irq", "errors")])


@pytest.mark.parametrize("width, case", PARAMS, ids=[f"{w}-{c}" for w, c in PARAMS])
def test_queues(width, case, seed):
    """Every case at 64 bits, some at 256 bits, and most on the large build
    (256 + 256 queues, 256 completion queues, at 64 bits)."""
    config = config_for(64, **LARGE) if width == "large" else config_for(width)
    run_cocotb("cocotb_tests.test_queues", config, top="ptlnic_pair", testcase=CASES[case].split("|"),
               name=f"test_queues-w{width}-{case}", env={"PTLNIC_SEED": str(seed)})
