"""Transmit engine: chains of descriptors to frames, with zero copy.

It takes the transmit queues with a complete chain cached from the
descriptor unit's work FIFO, one chain a turn (more while no other queue
waits), and for each chain issues one DMA read per descriptor of the chain, as one gather group, so the
frame's bytes arrive as one packed stream straight from the user's buffers into
the transmit frame buffer (store and forward), whence the MAC sends it. A chain
with a bad descriptor (outside the protection domain, or empty) is not read at
all, nor is one whose frame would be longer than ``max_frame`` (TOO_LONG). A
chain is read only when the frame buffer has room for its whole frame. Every
chain gets a completion, in ring order: when its frame is in the frame buffer
(the buffers may be reused), or at once if it was refused.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from ..dma.mux import DmaReadClient
from ..lib.stream import BufferedFifo, StreamFifo, registered_head
from ..packet_fifo import PacketFifo
from ..streams import bytes_layout
from .common import cpl_req_layout
from .desc import ChainPort, registered_look_up
from .layouts import QueueKind, QueueStatus

__all__ = ["TxEngine"]


class TxEngine(wiring.Component):
    """
    chain    In(ChainPort): the transmit queues' cached chains
    dma      Out(DmaReadClient): payload reads
    o_frame  Out(stream(bytes_layout)): frames for the MAC
    cpl      Out(stream(cpl_req_layout)): completions to write
    too_long Out(1): counter pulse, a chain refused as TOO_LONG
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "chain": In(ChainPort(config.num_queues, config.desc_cache, scheduled=True)),
            "dma": Out(DmaReadClient(config.data_width)),
            "o_frame": Out(stream.Signature(bytes_layout(config.data_width))),
            "cpl": Out(stream.Signature(cpl_req_layout())),
            "too_long": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        N, D = cfg.num_queues, cfg.desc_cache
        ch = self.chain
        WB = cfg.beat_bytes
        depth = cfg.tx_fifo // WB
        rec_l = data.StructLayout({"dma": 1, "status": 4, "queue": range(N), "cq": 8, "index": 16,
                                   "ndesc": range(D + 1), "len": 32, "need": range(depth + 1)})
        pending = m.submodules.pending = BufferedFifo(width=rec_l.size, depth=32)
        frames = m.submodules.frames = PacketFifo(cfg.data_width, depth, {"x": 1})

        # The look-up shown is registered, and the engine acts on it in the
        # next cycle if it named the same queue and descriptor again
        # (``fresh``), so that nothing it decides comes straight out of block
        # RAM. A new queue, a step or a pop costs a cycle in which it only
        # looks; its completion queue's room is known a cycle later still when
        # the queue's completion queue differs from the last one's.
        lk = registered_look_up(m, ch, {
            "bad": (1, ch.err != QueueStatus.OK), "too_long": (1, ch.bytes > cfg.max_frame - 4),
            "need": (range(0xFFFF // WB + 2), (ch.bytes + WB - 1) >> (WB.bit_length() - 1))})
        fresh = Signal()

        # A chain's payload is read only once the frame buffer has room for all
        # of it, so that its read data never waits: the read engine's data
        # path is shared with the descriptor fetches, in order. The room is
        # last cycle's free beats, less those reserved for frames being read:
        # everything that moved since only gave room back, and nothing was
        # reserved last cycle (a chain's first read is followed by a cycle in
        # which the engine only looks).
        resv = Signal(range(depth + 1))       # beats reserved for frames being read, not yet arrived
        avail = Signal(range(depth + 1))
        issue_first = Signal()
        m.d.sync += avail.eq(depth - frames.level - resv)
        fits = lk.need <= avail

        # ------------------------------------------------------------- schedule
        # The engine takes a queue from the work FIFO and names it (and the
        # descriptor to look at next cycle: ``ch.keep``/``ch.alt``,
        # ``ch.step``/``ch.stay``); it acts on the one shown (``l_sel``, the
        # queue it has). It gives the queue back after one chain, unless it
        # has another and no other queue waits, or at once when it is not
        # ready or its completion queue has no slot (the descriptor unit then
        # parks it).
        busy = Signal()                       # inside a chain of l_sel
        total = Signal(32)
        has = Signal()                        # a queue is the engine's: l_sel
        l_sel = ch.q
        busy_n = Signal()
        has_n = Signal()
        step = Signal()
        m.d.comb += [busy_n.eq(busy), has_n.eq(has)]
        work = ch.work
        m.d.comb += work.ready.eq(~has_n)
        m.d.sync += [busy.eq(busy_n), has.eq(has_n | work.valid), fresh.eq(has_n & ~step & ~ch.pop)]
        m.d.comb += [ch.keep.eq(has_n), ch.alt.eq(work.payload), ch.step.eq(step), ch.stay.eq(busy_n & ~step),
                     ch.hold.eq(busy)]
        # What the engine has shown is the descriptor wanted: it names only the
        # first descriptor of a chain, the one shown, or the next, so inside a
        # chain it is the one to issue, and otherwise the first.
        # After a chain: keep the queue while it has another and nobody waits.
        keep = lk.more & ~work.valid
        act = has & fresh

        rec = Signal(rec_l)
        m.d.comb += [rec.queue.eq(l_sel), rec.cq.eq(lk.cq), rec.index.eq(lk.head), rec.ndesc.eq(lk.len),
                     rec.need.eq(lk.need), pending.w_data.eq(rec)]
        req = self.dma.req
        dec = Signal(range(depth + 1))       # reserved beats that have arrived
        wrote = Signal(range(depth + 1))     # beats of the head frame so far
        with m.If(act & ~busy & (~lk.ready | ch.full)):
            # Nothing to send, or no completion slot for the chain: the queue
            # goes back (parked until its completion queue has room).
            m.d.comb += [ch.release.eq(1), has_n.eq(0)]
        with m.Elif(act & pending.w_rdy & (busy | ch.room)):
            # (A chain starts once its completion queue's room is known.)
            with m.If(~busy & (lk.bad | lk.too_long)):
                # Refused chain: no DMA, a completion with the reason.
                m.d.comb += [rec.status.eq(Mux(lk.bad, lk.err, QueueStatus.TOO_LONG)),
                             pending.w_en.eq(1), ch.pop.eq(1), ch.claim.eq(1),
                             self.too_long.eq(~lk.bad),
                             ch.release.eq(~keep), has_n.eq(keep)]
            with m.Elif(busy | fits):
                m.d.comb += [req.valid.eq(1), req.payload.addr.eq(lk.addr), req.payload.len.eq(lk.dlen),
                             req.payload.more.eq(~lk.last)]
                with m.If(req.ready):
                    m.d.comb += [issue_first.eq(~busy), ch.claim.eq(~busy)]
                    with m.If(lk.last):
                        m.d.comb += [rec.dma.eq(1), rec.status.eq(QueueStatus.OK),
                                     rec.len.eq(Mux(busy, total, 0) + lk.dlen), pending.w_en.eq(1), ch.pop.eq(1),
                                     busy_n.eq(0), ch.release.eq(~keep), has_n.eq(keep)]
                    with m.Else():
                        m.d.comb += [busy_n.eq(1), step.eq(1)]
                        m.d.sync += total.eq(Mux(busy, total, 0) + lk.dlen)

        # --------------------------------------------------------- frames, done
        cpls = m.submodules.cpls = StreamFifo(cpl_req_layout(), 4, ram_style="block")
        ph = registered_head(m, "pending_head", pending, rec_l)
        head = ph.payload
        resp = self.dma.data
        c = Signal(cpl_req_layout())
        m.d.comb += [c.cq.eq(head.cq), c.kind.eq(QueueKind.TX), c.queue.eq(head.queue), c.index.eq(head.index),
                     c.ndesc.eq(head.ndesc), cpls.i_stream.payload.eq(c)]
        fi = frames.i_pkt.payload
        with m.If(ph.valid & cpls.i_stream.ready):
            with m.If(~head.dma):
                m.d.comb += [c.status.eq(head.status), c.len.eq(0), cpls.i_stream.valid.eq(1), ph.ready.eq(1)]
            with m.Else():
                ok = resp.payload.status == 0
                m.d.comb += [
                    frames.i_pkt.valid.eq(resp.valid),
                    fi.data.eq(resp.payload.data), fi.nbytes.eq(resp.payload.nbytes), fi.last.eq(resp.payload.last),
                    fi.drop.eq(~ok),
                    resp.ready.eq(frames.i_pkt.ready),
                ]
                with m.If(resp.valid & resp.ready):
                    # A beat in the frame buffer is counted there, no longer here.
                    with m.If(resp.payload.last):
                        m.d.comb += dec.eq(Mux(head.need > wrote, head.need - wrote, 0))
                        m.d.sync += wrote.eq(0)
                    with m.Else():
                        m.d.comb += dec.eq(wrote < head.need)
                        m.d.sync += wrote.eq(wrote + 1)
                with m.If(resp.valid & resp.ready & resp.payload.last):
                    m.d.comb += [c.status.eq(Mux(ok, QueueStatus.OK, QueueStatus.DMA_ERROR)),
                                 c.len.eq(Mux(ok, head.len, 0)), cpls.i_stream.valid.eq(1), ph.ready.eq(1)]
        m.d.sync += resv.eq(resv + Mux(issue_first, lk.need, 0) - dec)
        m.d.comb += [frames.stall.eq(1), frames.o_meta.ready.eq(1)]
        wiring.connect(m, frames.o_pkt, flipped(self.o_frame))
        wiring.connect(m, cpls.o_stream, flipped(self.cpl))
        return m
