"""Completion writer: completion records into completion rings, by DMA, and
their interrupts, with moderation.

Every completion has a slot waiting for it: an engine starts a chain only
after claiming a slot of its completion queue (``claim``), so a record is never
held up by a full ring, and a completion queue that its owner does not drain
holds only the queues bound to it. A completion queue's incarnation starts
(ENABLE) only once every slot claimed from the previous one has been written
or dropped; a record whose completion queue stopped after its chain started is
dropped and counted. A consumer-index doorbell is taken only between the
last consumer index and the records written; others are ignored and counted.
Each record written or dropped is reported to the queues (``retire``), for
their drain. A completion queue interrupts
when it is armed (by its doorbell) and either MOD_COUNT completions are
unconsumed or one has waited MOD_TIME cycles; the interrupt disarms it. Only
completions whose write has reached the PCIe link count, so the interrupt never
overtakes the records. With beats of 32 bytes or more, two records for
consecutive slots of one ring (the first even) go in one write: a record for an
even slot waits up to ``PAIR_WAIT`` cycles for its partner.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..csr import get_field
from ..dma.mux import DmaWriteClient
from ..lib.arbiter import lowest_set
from .common import cpl_req_layout
from .desc import RETIRE_PORTS, CqClaimSignature, RetireSignature
from .layouts import CPL_BYTES, Completion

__all__ = ["CplWriter", "PAIR_WAIT"]

#: Cycles a completion record for an even ring slot waits for the record of the
#: next slot, so that the two share one write (beats of 32 bytes or more).
PAIR_WAIT = 8


class CplWriter(wiring.Component):
    """
    i_tx, i_rx  In(stream(cpl_req_layout)): completions from the engines
    dma         Out(DmaWriteClient)
    now         In(32): the cycle counter, for the records' timestamps
    irq         Out(msi_vectors): one pulse per interrupt, by vector
    claim       In(CqClaimSignature): slots claimed by the engines, room left
    retire      Out(RetireSignature) x RETIRE_PORTS: records written or dropped
    dropped, irqs, db_ignored  Out(1): counter pulses
    """

    def __init__(self, config, tables):
        """``tables``: the register tables of the completion queues and of
        their doorbell pages (``CQ``, ``CQ_DB``)."""
        self._config = config
        self._tables = tables
        # The ring base is read for each record; the control words when an
        # incarnation starts.
        self._base_rd = tables["CQ"].read_port("BASE", domain="comb")
        self._ctrl_rd = tables["CQ"].read_port("CTRL", domain="comb")
        self._time_rd = tables["CQ"].read_port("MOD_TIME", domain="comb")
        self._enabled = tables["CQ"].flag("CTRL", "ENABLE")
        super().__init__({
            "i_tx": In(stream.Signature(cpl_req_layout())),
            "i_rx": In(stream.Signature(cpl_req_layout())),
            "dma": Out(DmaWriteClient(config.data_width)),
            "now": In(32),
            "irq": Out(config.msi_vectors),
            "claim": In(CqClaimSignature(config.num_cqs)),
            "retire": Out(RetireSignature(config.num_queues)).array(RETIRE_PORTS),
            "dropped": Out(1), "irqs": Out(1), "db_ignored": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C, W, WB = cfg.num_cqs, cfg.data_width, cfg.beat_bytes
        tab, dbs = self._tables["CQ"], self._tables["CQ_DB"].wo_db
        ctrl_reg, db_reg = tab.block.reg("CTRL"), self._tables["CQ_DB"].block.reg("DB")
        CB = max(1, (C - 1).bit_length())
        N = cfg.num_queues
        QB = (2 * N - 1).bit_length()

        on = [Signal(name=f"cq_on{j}") for j in range(C)]
        l_log = [Signal(4, name=f"cq_log{j}") for j in range(C)]
        claimed = [Signal(16, name=f"claimed{j}") for j in range(C)]   # slots written + claimed, not dropped
        prod = [Signal(16, name=f"prod{j}") for j in range(C)]
        done = [Signal(16, name=f"done{j}") for j in range(C)]
        cons = [Signal(16, name=f"cons{j}") for j in range(C)]
        armed = [Signal(name=f"armed{j}") for j in range(C)]
        timer = [Signal(32, name=f"timer{j}") for j in range(C)]
        want = [self._enabled[j] for j in range(C)]                     # CTRL.ENABLE as last written
        l_vector = [Signal(5, name=f"cq_vector{j}") for j in range(C)]  # taken when the incarnation starts
        l_count = [Signal(16, name=f"cq_mod_count{j}") for j in range(C)]
        l_time = [Signal(32, name=f"cq_mod_time{j}") for j in range(C)]
        sizes = [(Const(1, 17) << l_log[j])[:17] for j in range(C)]

        # --------------------------------------------------------- write records
        last_rx = Signal()
        use_rx = Mux(self.i_tx.valid & self.i_rx.valid, ~last_rx, self.i_rx.valid)
        r = Signal(cpl_req_layout())
        m.d.comb += r.eq(Mux(use_rx, self.i_rx.payload, self.i_tx.payload))
        r_valid = self.i_tx.valid | self.i_rx.valid
        j = r.cq[:CB]
        exists = (r.cq < C) if C < 256 else Const(1)
        enabled = exists & Array(on)[j]
        r_q = Signal(QB)
        m.d.comb += r_q.eq(Mux(r.kind, N + r.queue, r.queue))
        p_j = Array(prod)[j]
        size_j = Array(sizes)[j]
        # Each write's CQ, record count and queues, in request order, for the
        # interrupts and the queues' drain.
        order_l = data.StructLayout({"cq": CB, "two": 1, "q0": QB, "q1": QB})
        order = m.submodules.order = fifo.SyncFIFOBuffered(width=order_l.size, depth=16)
        o_w = Signal(order_l)
        m.d.comb += order.w_data.eq(o_w)

        rec = Signal(Completion)
        out0 = Signal(Completion)
        out1 = Signal(Completion)
        two = Signal()               # the write in progress carries out0 and out1
        sending = Signal()
        half = Signal()
        take = Signal()              # the record ``r`` leaves its stream
        slot = Signal()              # ... and takes the next slot of its ring
        req = self.dma.req
        m.d.comb += self._base_rd.addr.eq(j)
        addr_j = self._base_rd.data + ((p_j & (size_j - 1)) << 4)
        m.d.comb += [rec.len.eq(r.len), rec.index.eq(r.index), rec.queue.eq(r.queue), rec.status.eq(r.status),
                     rec.kind.eq(r.kind), rec.ndesc.eq(r.ndesc), rec.timestamp.eq(self.now),
                     rec.phase.eq(~p_j.bit_select(Array(l_log)[j], 1))]

        def issue(addr, cq, pair, q0):
            return [req.valid.eq(1), req.payload.addr.eq(addr), req.payload.len.eq(Mux(pair, 2 * CPL_BYTES, CPL_BYTES)),
                    o_w.cq.eq(cq), o_w.two.eq(pair), o_w.q0.eq(q0), o_w.q1.eq(r_q)]

        # With beats of 32 bytes or more, a record for an even ring slot waits
        # up to PAIR_WAIT cycles for its successor in the same ring: the two go
        # in one beat, so that a completion costs half a beat of the link.
        pairs = WB >= 2 * CPL_BYTES
        held = Signal()
        h_j = Signal(CB)
        h_addr = Signal(64)
        h_q = Signal(QB)
        h_age = Signal(range(PAIR_WAIT + 1))
        with m.If(~sending & held):
            pair = r_valid & enabled & (j == h_j)
            # Written with its partner, or alone once another record is
            # waiting or PAIR_WAIT cycles have passed.
            go = r_valid | (h_age == PAIR_WAIT)
            m.d.comb += issue(h_addr, h_j, pair, h_q)
            m.d.comb += req.valid.eq(order.w_rdy & go)
            with m.If(~go):
                m.d.sync += h_age.eq(h_age + 1)
            with m.If(req.valid & req.ready):
                m.d.comb += [order.w_en.eq(1), take.eq(pair), slot.eq(pair)]
                m.d.sync += [sending.eq(1), held.eq(0), two.eq(pair), out1.eq(rec), half.eq(0)]
        with m.Elif(~sending & r_valid):
            with m.If(~enabled):
                m.d.comb += [take.eq(1), self.dropped.eq(1), self.retire[2].en.eq(1), self.retire[2].q.eq(r_q)]
            with m.Elif(order.w_rdy):
                if pairs:
                    with m.If(~p_j[0]):
                        m.d.comb += [take.eq(1), slot.eq(1)]
                        m.d.sync += [held.eq(1), h_j.eq(j), h_addr.eq(addr_j), out0.eq(rec), h_q.eq(r_q),
                                     h_age.eq(0)]
                    with m.Else():
                        m.d.comb += issue(addr_j, j, 0, r_q)
                else:
                    m.d.comb += issue(addr_j, j, 0, r_q)
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
        o_r = Signal(order_l)
        m.d.comb += o_r.eq(order.r_data)
        o_j, o_two = o_r.cq, o_r.two
        m.d.comb += [self.retire[0].en.eq(self.dma.resp.valid), self.retire[0].q.eq(o_r.q0),
                     self.retire[1].en.eq(self.dma.resp.valid & o_two), self.retire[1].q.eq(o_r.q1)]

        # ---------------------------------------------------- per-queue state
        fires = []
        vectors = []
        db_bad = []
        cl = self.claim
        dropping = self.retire[2].en
        quiets = [(claimed[jj] == prod[jj]) & (done[jj] == prod[jj]) for jj in range(C)]
        # Incarnations start one a cycle, with the control words of the table.
        startable = Signal(C)
        m.d.comb += startable.eq(Cat(*[want[jj] & ~on[jj] & quiets[jj] for jj in range(C)]))
        s_j = lowest_set(m, startable, "cq_start")
        m.d.comb += [self._ctrl_rd.addr.eq(s_j), self._time_rd.addr.eq(s_j)]
        s_ctrl = self._ctrl_rd.data
        db_cons = get_field(dbs.data, db_reg, "CONS")
        db_arm = get_field(dbs.data, db_reg, "ARM")
        for jj in range(C):
            start = startable[jj] & (s_j == jj)
            db_stb = dbs.stb & (dbs.entry == jj)
            with m.If(on[jj] & ~want[jj]):
                m.d.sync += on[jj].eq(0)
            used = (claimed[jj] - cons[jj])[:16]
            m.d.comb += [cl.room[jj].eq(on[jj] & (used < sizes[jj])),
                         cl.room2[jj].eq(on[jj] & (used + 1 < sizes[jj]))]
            n_claims = (cl.tx.en & (cl.tx.cq == jj)) + (cl.rx.en & (cl.rx.cq == jj))
            unconsumed = (done[jj] - cons[jj])[:16]
            k = Mux(l_count[jj] == 0, 1, l_count[jj])
            fire = Signal(name=f"cq_fire{jj}")
            m.d.comb += fire.eq(armed[jj] & ((unconsumed >= k) | ((unconsumed != 0) & (l_time[jj] != 0)
                                                                  & (timer[jj] >= l_time[jj]))))
            fires.append(fire)
            # A consumer index between the last one and the records written.
            db_ok = on[jj] & ((db_cons - cons[jj])[:16] <= unconsumed)
            db_bad.append(db_stb & ~db_ok)
            with m.If(start):
                m.d.sync += [prod[jj].eq(0), done[jj].eq(0), cons[jj].eq(0), armed[jj].eq(0), timer[jj].eq(0),
                             claimed[jj].eq(0), on[jj].eq(1), l_log[jj].eq(get_field(s_ctrl, ctrl_reg, "LOG_SIZE")),
                             l_vector[jj].eq(get_field(s_ctrl, ctrl_reg, "VECTOR")),
                             l_count[jj].eq(get_field(s_ctrl, ctrl_reg, "MOD_COUNT")),
                             l_time[jj].eq(self._time_rd.data)]
            with m.Else():
                m.d.sync += claimed[jj].eq(claimed[jj] + n_claims - (dropping & exists & (j == jj)))
                with m.If(slot & (j == jj)):
                    m.d.sync += prod[jj].eq(prod[jj] + 1)
                with m.If(self.dma.resp.valid & (o_j == jj)):
                    m.d.sync += done[jj].eq(done[jj] + 1 + o_two)
                with m.If(fire):
                    m.d.sync += [armed[jj].eq(0), timer[jj].eq(0)]
                with m.Elif(armed[jj] & (unconsumed != 0)):
                    m.d.sync += timer[jj].eq(Mux(timer[jj] == 0xFFFF_FFFF, timer[jj], timer[jj] + 1))
                with m.If(db_stb & db_ok):
                    m.d.sync += cons[jj].eq(db_cons)
                    with m.If(db_arm):
                        m.d.sync += [armed[jj].eq(1), timer[jj].eq(0)]
            vectors.append(Mux(fire, (Const(1, cfg.msi_vectors) << l_vector[jj])[:cfg.msi_vectors], 0))
        # Registers read through the table's window: the entry being read.
        r = tab.r_entry
        m.d.comb += [tab.ro_state.eq(Array([Cat(prod[jj], cons[jj]) for jj in range(C)])[r]),
                     tab.ro_status.eq(Array([Cat(armed[jj], on[jj], ~on[jj] & ~quiets[jj]) for jj in range(C)])[r])]
        irq = vectors[0]
        for v in vectors[1:]:
            irq = irq | v
        m.d.comb += [self.irq.eq(irq), self.irqs.eq(Cat(*fires).any()), self.db_ignored.eq(Cat(*db_bad).any())]
        return m
