"""Frames from one NIC's host to the other's, as an application would send
them: used by the benchmark and the demo.

A :class:`Flow` owns a transmit queue on the sending NIC and a receive queue on
the receiving one. ``await flow.run(size, n)`` posts a receive buffer per frame,
posts ``n`` frames (each gathered from ``pieces`` buffers) with one doorbell,
waits for every completion (polling, or by interrupt), checks every frame's
bytes in the receiver's memory and returns the figures. ``await
flow.latency(size)`` sends one frame on an idle pair and returns the cycles
from the doorbell reaching the sending NIC to the receive completion leaving
the receiving NIC for its host's memory.
"""

import random
from dataclasses import dataclass

from host.queues import Buffer
from rtl.pcie.tlp import FMT_TYPE_MWR32, FMT_TYPE_MWR64
from rtl.queues.layouts import CPL_BYTES, QueueStatus
from .pcie import _fmt_type, _req_addr
from .wire import eth_frame

__all__ = ["Flow", "FlowResult"]

ETHERTYPE = 0x88B5
ALL_MEMORY = (0, 1 << 31)


@dataclass
class FlowResult:
    """``frames`` frames of ``size`` bytes (FCS included) arrived; the steady
    rate is taken over the middle three quarters of the run (the first and
    last eighth are the pipeline filling and draining): ``steady_frames``
    frames in ``cycles`` cycles, from the cycles their receive completion
    records reached the receiving host's memory."""
    size: int
    frames: int
    steady_frames: int
    cycles: int
    sim_cycles: int        # simulated cycles of the whole run

    @property
    def frames_per_cycle(self):
        return self.steady_frames / self.cycles if self.cycles else float("nan")


class Flow:
    def __init__(self, tb, src, dst, *, queue=0, cq=(0, 1), log_size=12, seed=1):
        self.tb, self.src, self.dst = tb, src, dst        # HostSides
        self.queue, self.cq_index, self.log_size = queue, cq, log_size
        self.rng = random.Random(seed)
        self.marks = {}
        self.landed = []       # cycle each receive completion record reached host memory

    async def setup(self, *, irq=False, mod_count=1, mod_time=0, pause=True):
        """``pause``: the receiver pauses the link when its receive buffer
        fills (QUEUE_CONTROL.RX_BACKPRESSURE) rather than dropping frames."""
        s, d = self.src.nic, self.dst.nic
        await d.write_fields("QUEUE_CONTROL", RX_BACKPRESSURE=int(pause))
        for nic in (s, d):
            await nic.register_mr(0, *ALL_MEMORY)
        self.tx_cq = await s.create_cq(self.cq_index[0], self.log_size, mod_count=mod_count)
        self.txq = await s.create_tx_queue(self.queue, self.log_size, self.tx_cq)
        self.rx_cq = await d.create_cq(self.cq_index[1], self.log_size, mod_count=mod_count, mod_time=mod_time)
        self.rxq = await d.create_rx_queue(self.queue, self.log_size, self.rx_cq)
        if irq:
            await d.enable_irqs()
        # Latency probes: the doorbell reaching the sender, the receive
        # completion record leaving the receiver.
        db = self.src.transport.bar.get_absolute_address(s.regs[f"TXQ{self.queue}_DB"].addr)
        lo, hi = self.rx_cq.ring.addr, self.rx_cq.ring.addr + self.rx_cq.ring.size

        def doorbell(cycle, hdr):
            if _fmt_type(hdr) in (FMT_TYPE_MWR32, FMT_TYPE_MWR64) and _req_addr(hdr) == db:
                self.marks.setdefault("db", cycle)

        def completion(ft, hdr, payload):
            if ft in (FMT_TYPE_MWR32, FMT_TYPE_MWR64) and lo <= _req_addr(hdr) < hi:
                now = self.dst.dev.tx_cycle        # the cycle of the TLP's last beat
                self.marks.setdefault("cpl", now)
                self.landed += [now] * (len(payload) // CPL_BYTES)      # records in ring order

        self.src.dev.rx_observers.append(doorbell)
        self.dst.dev.tx_observers.append(completion)
        return self

    def _frame(self, i, body):
        payload = i.to_bytes(4, "big") + bytes(self.rng.getrandbits(8) for _ in range(min(body - 18, 64)))
        f = eth_frame([2, 0, 0, 0, 0, self.queue], [2, 0, 0, 0, 1, self.queue], ETHERTYPE, payload)
        return f + bytes(self.rng.getrandbits(8) for _ in range(body - len(f)))

    async def run(self, size, n, *, pieces=1, irq=False, poll_every=256, limit_cycles=2_000_000):
        """``n`` frames of ``size`` bytes (FCS included) with one doorbell."""
        if not 64 <= size <= self.src.nic.build["max_frame"]:
            raise ValueError(f"frame size {size} B outside 64 .. {self.src.nic.build['max_frame']}")
        if n > (1 << self.log_size) // max(1, pieces):
            raise ValueError(f"{n} frames of {pieces} buffers do not fit rings of {1 << self.log_size}")
        tb, body = self.tb, size - 4
        stride = -(-(body + 8 * pieces) // 64) * 64       # buffers start 64-byte aligned, as a driver's would
        tx_mem = self.src.transport.alloc_dma(n * stride)
        rx_mem = self.dst.transport.alloc_dma(n * stride)
        frames = [self._frame(i, body) for i in range(n)]
        for i in range(n):
            await self.rxq.post([Buffer(rx_mem.addr + i * stride, body)], doorbell=False)
        await self.rxq.doorbell()
        await tb.wait_cycles(200 + 3 * n)                   # the receiver fetches its descriptors first
        c0 = tb.cycle()
        for i, f in enumerate(frames):
            cuts = sorted(self.rng.sample(range(1, body), pieces - 1)) if pieces > 1 else []
            bufs, base = [], i * stride
            for k, (lo, hi) in enumerate(zip([0] + cuts, cuts + [body])):
                addr = base + lo + 8 * k                      # pieces after the first at odd alignments
                tx_mem.write(addr, f[lo:hi])
                bufs.append(Buffer(tx_mem.addr + addr, hi - lo))
            await self.txq.send(bufs, doorbell=False)
        self.marks.clear()
        self.landed = []
        await self.txq.doorbell()
        got, sent = [], []
        while len(got) < n or len(sent) < n:
            if irq and len(got) < n:
                got += await self.rx_cq.wait(timeout_ns=limit_cycles * 4)
            else:
                got += await self.rx_cq.poll()
                await tb.wait_cycles(poll_every)
            sent += await self.tx_cq.poll()
            if tb.cycle() - c0 > limit_cycles:
                drops = {k: v for h in (self.src, self.dst) for k, v in (await h.nic.counters()).items()
                         if v and k.startswith(("RX_DROP", "DESC_ERR", "QUEUE_FAULTS", "TX_TOO"))}
                raise AssertionError(f"{size}-byte frames: {len(got)} of {n} arrived, {len(sent)} sent "
                                     f"in {limit_cycles} cycles; drops and errors: {drops}")
        for c in sent:
            self.txq.completed(c)
            if c["status"] != QueueStatus.OK or c["len"] != body:
                raise AssertionError(f"a send of {size} B completed {c['status'].name}, {c['len']} B")
        for i, c in enumerate(got):
            p = self.rxq.completed(c)
            if c["status"] != QueueStatus.OK or c["len"] != body:
                raise AssertionError(f"frame {i} of {size} B completed {c['status'].name}, {c['len']} B")
            if rx_mem.read(p.buffers[0].addr - rx_mem.addr, body) != frames[i]:
                raise AssertionError(f"frame {i} of {size} B arrived with different bytes")
        # The steady rate: a least-squares line through the cycles the records
        # of the middle three quarters reached host memory (two records may
        # share a write, so single gaps jitter).
        first, last = n // 8, n - 1 - n // 8
        ys = self.landed[first:last + 1]
        xs = range(first, last + 1)
        if len(ys) >= 2:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        else:
            slope = 0
        self.spacing = [b - a for a, b in zip(self.landed, self.landed[1:])]
        return FlowResult(size, n, last - first, round(slope * (last - first)), tb.cycle() - c0)

    async def latency(self, size, repeat=3):
        """Median cycles, doorbell to receive completion, of single frames."""
        lat = []
        for _ in range(repeat):
            await self.run(size, 1, poll_every=32)
            lat.append(self.marks["cpl"] - self.marks["db"])
        return sorted(lat)[len(lat) // 2]
