"""Receive engine: frames to chains of posted buffers, with zero copy.

Each frame from the receive buffer is steered to a receive queue (by the MAC,
from its destination address). The planner takes the queue's next cached chain
and issues one DMA write per descriptor as one scatter group, filling buffers
in order; a frame longer than the chain fills it and completes TRUNCATED. The
data mover streams the frame from the receive buffer to the DMA engine from
the first request on (its byte count is known from the chain's total length:
the write engine holds only a few chunks of a group, so waiting for the last
request could deadlock).
A frame whose queue is disabled, or has no buffer posted, is dropped and
counted, or with back-pressure on (QUEUE_CONTROL.RX_BACKPRESSURE) waits for
one; a frame whose buffers are posted but still being fetched waits for them.
A chain with a bad descriptor gets nothing written: the frame is dropped
and the chain completes with the reason.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..dma.mux import DmaWriteClient
from ..lib.stream import BufferedFifo, StreamFifo, registered_head
from ..streams import bytes_layout
from .common import cpl_req_layout
from .desc import ChainPort, registered_look_up
from .layouts import QueueKind, QueueStatus

__all__ = ["RxEngine", "rx_meta_layout"]

#: Frames planned but not yet handed to the completion writer.
CPL_DEPTH = 16


def rx_meta_layout(num_queues):
    """What the receive buffer records of each good frame: its length (no
    FCS), the queue its destination address steers it to, its EtherType."""
    return data.StructLayout({"length": 14, "queue": range(num_queues), "ethertype": 16})


class RxEngine(wiring.Component):
    """
    chain        In(ChainPort): the receive queues' cached chains
    i_meta       In(stream(rx_meta_layout)): length and queue of the next frame
    i_frame      In(stream(bytes_layout)): the frames
    dma          Out(DmaWriteClient): buffer writes
    cpl          Out(stream(cpl_req_layout))
    backpressure In(1)
    delivered, no_buf, disabled, cq_full  Out(1): counter pulses
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "chain": In(ChainPort(config.num_queues, config.desc_cache)),
            "i_meta": In(stream.Signature(rx_meta_layout(config.num_queues))),
            "i_frame": In(stream.Signature(bytes_layout(config.data_width))),
            "dma": Out(DmaWriteClient(config.data_width)),
            "cpl": Out(stream.Signature(cpl_req_layout())),
            "backpressure": In(1),
            "delivered": Out(1), "no_buf": Out(1), "disabled": Out(1), "cq_full": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        N, D = cfg.num_queues, cfg.desc_cache
        ch = self.chain
        rec_l = data.StructLayout({"wr": 1, "status": 4, "queue": range(N), "cq": 8, "index": 16,
                                   "ndesc": range(D + 1), "len": 32, "nreq": range(D + 1)})
        plan_l = data.StructLayout({"deliver": 1, "written": 14})
        pending = m.submodules.pending = BufferedFifo(width=rec_l.size, depth=CPL_DEPTH)
        plans = m.submodules.plans = fifo.SyncFIFOBuffered(width=plan_l.size, depth=32)

        # -------------------------------------------------------------- planner
        meta = self.i_meta.payload
        q = meta.queue
        busy = Signal()
        rem = Signal(14)
        nreq = Signal(range(D + 1))
        # The planner names the queue and descriptor to look at next cycle; the
        # chain and descriptor shown are those named last cycle. What is shown
        # is registered (``lk``), and used in the next cycle if the planner
        # named the same queue and descriptor again (``fresh``) and it is the
        # frame's queue, so that nothing it decides comes straight out of
        # block RAM: a step, a pop or another queue costs a cycle in which it
        # only looks.
        busy_n = Signal()
        l_sel = ch.q
        step = Signal()
        m.d.comb += busy_n.eq(busy)
        m.d.sync += busy.eq(busy_n)
        m.d.comb += [ch.alt.eq(q), ch.step.eq(step), ch.stay.eq(busy_n & ~step), ch.hold.eq(busy)]
        lk = registered_look_up(m, ch)
        fresh = Signal()
        m.d.sync += fresh.eq((q == l_sel) & ~step & ~ch.pop)
        # The frame's queue is the one shown (inside a frame always, and the
        # descriptor shown is the one to use: the planner names only the
        # first, the one shown, or the next).
        looked = fresh & (l_sel == q)
        rec = Signal(rec_l)
        plan = Signal(plan_l)
        m.d.comb += [rec.queue.eq(q), rec.cq.eq(lk.cq), rec.index.eq(lk.head),
                     rec.ndesc.eq(lk.len), pending.w_data.eq(rec), plans.w_data.eq(plan)]
        # Frames between the planner and the completion writer: at most the
        # completion FIFO's depth, so that a finished frame's completion never
        # waits (the write engine must never wait on its clients: its statuses
        # and the completion records share it).
        in_flight = Signal(range(CPL_DEPTH + 1))
        room = pending.w_rdy & plans.w_rdy & (in_flight < CPL_DEPTH)
        # Write requests whose statuses have not been used yet: at most the
        # status FIFO's depth, so that every status is taken the cycle it is
        # offered (the deadlock rule), even those of a chain still being planned.
        STATUSES = 2 * D
        st_fifo = m.submodules.statuses = fifo.SyncFIFOBuffered(width=4, depth=STATUSES)
        reqs_out = Signal(range(STATUSES + 1))
        credit = reqs_out < STATUSES
        req = self.dma.req
        cur = Mux(busy, rem, meta.length)
        n = Mux(lk.dlen < cur, lk.dlen, cur)[:14]
        after = (cur - n)[:14]
        final = (after == 0) | lk.last
        with m.If(self.i_meta.valid & room):
            with m.If(~looked):
                pass                          # the queue's chain and completion queue are being looked up
            with m.Elif(~busy & ~lk.running):
                m.d.comb += [self.i_meta.ready.eq(1), plans.w_en.eq(1), self.disabled.eq(1)]
            with m.Elif(~busy & ~lk.ready):
                # No chain cached: wait while posted descriptors are being
                # fetched; with none posted, drop the frame (or pause).
                with m.If(~self.backpressure & ~lk.fetching):
                    m.d.comb += [self.i_meta.ready.eq(1), plans.w_en.eq(1), self.no_buf.eq(1)]
            with m.Elif(~busy & ch.full):
                # Its completion queue has no free slot: waiting for the owner
                # to drain it would hold every other queue, so the frame is
                # dropped and counted, with back-pressure on too.
                m.d.comb += [self.i_meta.ready.eq(1), plans.w_en.eq(1), self.cq_full.eq(1)]
            with m.Elif(~busy & ~ch.room):
                pass                          # the last slot (the transmit side may take it), or room being looked up
            with m.Elif(~busy & (lk.err != QueueStatus.OK)):
                m.d.comb += [self.i_meta.ready.eq(1), plans.w_en.eq(1), rec.status.eq(lk.err), pending.w_en.eq(1),
                             ch.pop.eq(1), ch.claim.eq(1)]
            with m.Else():
                m.d.comb += [req.valid.eq(credit), req.payload.addr.eq(lk.addr), req.payload.len.eq(n),
                             req.payload.more.eq(~final)]
                with m.If(req.ready & credit):
                    with m.If(~busy):
                        m.d.comb += [plan.deliver.eq(1), plans.w_en.eq(1), ch.claim.eq(1),
                                     plan.written.eq(Mux(lk.bytes < meta.length, lk.bytes, meta.length))]
                    with m.If(final):
                        m.d.comb += [rec.wr.eq(1), rec.nreq.eq(Mux(busy, nreq, 0) + 1), rec.len.eq(meta.length - after),
                                     rec.status.eq(Mux(after != 0, QueueStatus.TRUNCATED, QueueStatus.OK)),
                                     pending.w_en.eq(1), ch.pop.eq(1), self.i_meta.ready.eq(1),
                                     self.delivered.eq(1), busy_n.eq(0)]
                    with m.Else():
                        m.d.comb += [busy_n.eq(1), step.eq(1)]
                        m.d.sync += [rem.eq(after), nreq.eq(Mux(busy, nreq, 0) + 1)]

        # ----------------------------------------------------------- data mover
        p = plans.r_data
        hd = Signal(plan_l)
        m.d.comb += hd.eq(p)
        passed = Signal(14)
        beat = self.i_frame.payload
        left = (hd.written - passed)[:14]
        out_n = Mux(passed >= hd.written, 0, Mux(beat.nbytes < left, beat.nbytes, left))
        wd = self.dma.data
        with m.If(plans.r_rdy & self.i_frame.valid):
            with m.If(hd.deliver & (out_n != 0)):
                m.d.comb += [wd.valid.eq(1), wd.payload.data.eq(beat.data), wd.payload.nbytes.eq(out_n),
                             wd.payload.last.eq(out_n == left), self.i_frame.ready.eq(wd.ready)]
            with m.Else():
                m.d.comb += self.i_frame.ready.eq(1)   # dropped or beyond the chain: discard
            with m.If(self.i_frame.ready):
                m.d.sync += passed.eq(passed + beat.nbytes)
                with m.If(beat.last):
                    m.d.comb += plans.r_en.eq(1)
                    m.d.sync += passed.eq(0)

        # ----------------------------------------------------------- completions
        cpls = m.submodules.cpls = StreamFifo(cpl_req_layout(), CPL_DEPTH, ram_style="block")
        m.d.sync += in_flight.eq(in_flight + pending.w_en - (self.cpl.valid & self.cpl.ready))
        ph = registered_head(m, "pending_head", pending, rec_l)
        head = ph.payload
        got = Signal(range(D + 1))
        failed = Signal()
        c = Signal(cpl_req_layout())
        m.d.comb += [c.cq.eq(head.cq), c.kind.eq(QueueKind.RX), c.queue.eq(head.queue), c.index.eq(head.index),
                     c.ndesc.eq(head.ndesc), c.len.eq(Mux(head.wr, head.len, 0)), cpls.i_stream.payload.eq(c)]
        resp = self.dma.resp
        m.d.comb += [resp.ready.eq(1), st_fifo.w_en.eq(resp.valid), st_fifo.w_data.eq(resp.payload.status)]
        m.d.sync += reqs_out.eq(reqs_out + (req.valid & req.ready) - (st_fifo.r_en & st_fifo.r_rdy))
        with m.If(ph.valid & cpls.i_stream.ready):
            with m.If(~head.wr):
                m.d.comb += [c.status.eq(head.status), cpls.i_stream.valid.eq(1), ph.ready.eq(1)]
            with m.Else():
                m.d.comb += st_fifo.r_en.eq(1)
                with m.If(st_fifo.r_rdy):
                    bad = failed | (st_fifo.r_data != 0)
                    with m.If(got + 1 == head.nreq):
                        m.d.comb += [c.status.eq(Mux(bad, QueueStatus.DMA_ERROR, head.status)),
                                     cpls.i_stream.valid.eq(1), ph.ready.eq(1)]
                        m.d.sync += [got.eq(0), failed.eq(0)]
                    with m.Else():
                        m.d.sync += [got.eq(got + 1), failed.eq(bad)]
        wiring.connect(m, cpls.o_stream, wiring.flipped(self.cpl))
        return m
