"""Completion writer: completion records into completion rings, by DMA, and
their interrupts, with moderation.

A completion for a full ring waits (nothing is lost); one for a disabled or
missing completion queue is dropped and counted. A completion queue interrupts
when it is armed (by its doorbell) and either MOD_COUNT completions are
unconsumed or one has waited MOD_TIME cycles; the interrupt disarms it. Only
completions whose write has reached the PCIe link count, so the interrupt never
overtakes the records. With beats of 32 bytes or more, two records for
consecutive slots of one ring (the first even) go in one write.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..dma.mux import DmaWriteClient
from .common import cpl_req_layout
from .layouts import CPL_BYTES, Completion

__all__ = ["CplWriter"]


class CplWriter(wiring.Component):
    """
    i_tx, i_rx  In(stream(cpl_req_layout)): completions from the engines
    dma         Out(DmaWriteClient)
    now         In(32): the cycle counter, for the records' timestamps
    irq         Out(msi_vectors): one pulse per interrupt, by vector
    dropped, irqs  Out(1): counter pulses
    """

    def __init__(self, config, cqs):
        self._config = config
        self._cqs = cqs
        super().__init__({
            "i_tx": In(stream.Signature(cpl_req_layout())),
            "i_rx": In(stream.Signature(cpl_req_layout())),
            "dma": Out(DmaWriteClient(config.data_width)),
            "now": In(32),
            "irq": Out(config.msi_vectors),
            "dropped": Out(1), "irqs": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C, W, WB = cfg.num_cqs, cfg.data_width, cfg.beat_bytes
        cqs = self._cqs
        CB = max(1, (C - 1).bit_length())

        prod = [Signal(16, name=f"prod{j}") for j in range(C)]
        done = [Signal(16, name=f"done{j}") for j in range(C)]
        cons = [Signal(16, name=f"cons{j}") for j in range(C)]
        armed = [Signal(name=f"armed{j}") for j in range(C)]
        timer = [Signal(32, name=f"timer{j}") for j in range(C)]
        was_on = [Signal(name=f"cq_on{j}") for j in range(C)]
        sizes = [(Const(1, 17) << cq.log_size)[:17] for cq in cqs]

        # --------------------------------------------------------- write records
        last_rx = Signal()
        use_rx = Mux(self.i_tx.valid & self.i_rx.valid, ~last_rx, self.i_rx.valid)
        r = Signal(cpl_req_layout())
        m.d.comb += r.eq(Mux(use_rx, self.i_rx.payload, self.i_tx.payload))
        r_valid = self.i_tx.valid | self.i_rx.valid
        j = r.cq[:CB]
        exists = (r.cq < C) if C < 256 else Const(1)
        enabled = exists & Array([cq.enable for cq in cqs])[j]
        p_j = Array(prod)[j]
        size_j = Array(sizes)[j]
        full = (p_j - Array(cons)[j])[:16] >= size_j
        # Each write's CQ and record count, in request order, for the interrupts.
        order = m.submodules.order = fifo.SyncFIFOBuffered(width=CB + 1, depth=16)

        rec = Signal(Completion)
        out0 = Signal(Completion)
        out1 = Signal(Completion)
        two = Signal()               # the write in progress carries out0 and out1
        sending = Signal()
        half = Signal()
        take = Signal()              # the record ``r`` leaves its stream
        slot = Signal()              # ... and takes the next slot of its ring
        req = self.dma.req
        addr_j = Array([cq.base for cq in cqs])[j] + ((p_j & (size_j - 1)) << 4)
        m.d.comb += [rec.len.eq(r.len), rec.index.eq(r.index), rec.queue.eq(r.queue), rec.status.eq(r.status),
                     rec.kind.eq(r.kind), rec.ndesc.eq(r.ndesc), rec.timestamp.eq(self.now),
                     rec.phase.eq(~p_j.bit_select(Array([cq.log_size for cq in cqs])[j], 1))]

        def issue(addr, cq, pair):
            return [req.valid.eq(1), req.payload.addr.eq(addr), req.payload.len.eq(Mux(pair, 2 * CPL_BYTES, CPL_BYTES)),
                    order.w_data.eq(Cat(cq, pair))]

        # With beats of 32 bytes or more, a record for an even ring slot waits
        # one cycle for its successor in the same ring: the two go in one beat,
        # so that a completion costs half a beat of the link.
        pairs = WB >= 2 * CPL_BYTES
        held = Signal()
        h_j = Signal(CB)
        h_addr = Signal(64)
        with m.If(~sending & held):
            pair = r_valid & enabled & (j == h_j) & ~full
            m.d.comb += issue(h_addr, h_j, pair)
            m.d.comb += req.valid.eq(order.w_rdy)
            with m.If(req.valid & req.ready):
                m.d.comb += [order.w_en.eq(1), take.eq(pair), slot.eq(pair)]
                m.d.sync += [sending.eq(1), held.eq(0), two.eq(pair), out1.eq(rec), half.eq(0)]
        with m.Elif(~sending & r_valid):
            with m.If(~enabled):
                m.d.comb += [take.eq(1), self.dropped.eq(1)]
            with m.Elif(~full & order.w_rdy):
                if pairs:
                    with m.If(~p_j[0]):
                        m.d.comb += [take.eq(1), slot.eq(1)]
                        m.d.sync += [held.eq(1), h_j.eq(j), h_addr.eq(addr_j), out0.eq(rec)]
                    with m.Else():
                        m.d.comb += issue(addr_j, j, 0)
                else:
                    m.d.comb += issue(addr_j, j, 0)
                with m.If(req.valid & req.ready):
                    m.d.comb += [take.eq(1), slot.eq(1), order.w_en.eq(1)]
                    m.d.sync += [sending.eq(1), out0.eq(rec), two.eq(0), half.eq(0)]
        with m.If(take):
            m.d.comb += [self.i_rx.ready.eq(use_rx), self.i_tx.ready.eq(~use_rx)]
            m.d.sync += last_rx.eq(use_rx)

        wd = self.dma.data
        raw = out0.as_value()
        if pairs:
            m.d.comb += [wd.valid.eq(sending), wd.payload.data.eq(Cat(out0, out1)),
                         wd.payload.nbytes.eq(Mux(two, 2 * CPL_BYTES, CPL_BYTES)), wd.payload.last.eq(1)]
            with m.If(wd.valid & wd.ready):
                m.d.sync += sending.eq(0)
        elif WB >= CPL_BYTES:
            m.d.comb += [wd.valid.eq(sending), wd.payload.data.eq(raw), wd.payload.nbytes.eq(CPL_BYTES),
                         wd.payload.last.eq(1)]
            with m.If(wd.valid & wd.ready):
                m.d.sync += sending.eq(0)
        else:
            m.d.comb += [wd.valid.eq(sending), wd.payload.data.eq(Mux(half, raw[W:], raw[:W])),
                         wd.payload.nbytes.eq(WB), wd.payload.last.eq(half)]
            with m.If(wd.valid & wd.ready):
                m.d.sync += half.eq(~half)
                with m.If(half):
                    m.d.sync += sending.eq(0)

        # Written (the TLP passed the arbiter): the completions count for interrupts.
        m.d.comb += self.dma.resp.ready.eq(1)
        m.d.comb += order.r_en.eq(self.dma.resp.valid)
        o_j, o_two = order.r_data[:CB], order.r_data[CB]

        # ---------------------------------------------------- per-queue state
        fires = []
        vectors = []
        for jj, cq in enumerate(cqs):
            start = cq.enable & ~was_on[jj]
            m.d.sync += was_on[jj].eq(cq.enable)
            unconsumed = (done[jj] - cons[jj])[:16]
            k = Mux(cq.mod_count == 0, 1, cq.mod_count)
            fire = Signal(name=f"cq_fire{jj}")
            m.d.comb += fire.eq(armed[jj] & ((unconsumed >= k) | ((unconsumed != 0) & (cq.mod_time != 0)
                                                                  & (timer[jj] >= cq.mod_time))))
            fires.append(fire)
            with m.If(start):
                m.d.sync += [prod[jj].eq(0), done[jj].eq(0), cons[jj].eq(0), armed[jj].eq(0), timer[jj].eq(0)]
            with m.Else():
                with m.If(slot & (j == jj)):
                    m.d.sync += prod[jj].eq(prod[jj] + 1)
                with m.If(self.dma.resp.valid & (o_j == jj)):
                    m.d.sync += done[jj].eq(done[jj] + 1 + o_two)
                with m.If(fire):
                    m.d.sync += [armed[jj].eq(0), timer[jj].eq(0)]
                with m.Elif(armed[jj] & (unconsumed != 0)):
                    m.d.sync += timer[jj].eq(Mux(timer[jj] == 0xFFFF_FFFF, timer[jj], timer[jj] + 1))
                with m.If(cq.db.stb):
                    m.d.sync += cons[jj].eq(cq.db_cons)
                    with m.If(cq.db_arm):
                        m.d.sync += [armed[jj].eq(1), timer[jj].eq(0)]
            m.d.comb += [cq.state.eq(Cat(prod[jj], cons[jj])), cq.status.eq(armed[jj])]
            vectors.append(Mux(fire, (Const(1, cfg.msi_vectors) << cq.vector)[:cfg.msi_vectors], 0))
        irq = vectors[0]
        for v in vectors[1:]:
            irq = irq | v
        m.d.comb += [self.irq.eq(irq), self.irqs.eq(Cat(*fires).any())]
        return m
