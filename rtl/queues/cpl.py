"""Completion writer: completion records into completion rings, by DMA, and
their interrupts, with moderation.

Every completion has a slot waiting for it: an engine starts a chain only
after claiming a slot of its completion queue (``claim``), so a record is never
held up by a full ring, and a completion queue that its owner does not drain
holds only the queues bound to it. A record whose completion queue had stopped
when the record came is dropped and counted. A consumer-index doorbell is
taken only between the last consumer index and the records written; others
are ignored and counted. Each record written or dropped is reported to the
queues (``retire``), for their drain. With beats of 32 bytes or more, two
records for consecutive slots of one ring (the first even) go in one write: a
record for an even slot waits up to ``PAIR_WAIT`` cycles for its partner.

State lives in memories, each written by one unit: the configuration of each
incarnation, with whether it runs or drains (the start unit), the producer index (the record path), the
records written (the status path: a record counts once its write has passed
the PCIe arbiter, so an interrupt never overtakes it), the consumer index (the
doorbell unit, with the stamp of the last arming), the interrupt timer's start
and the arming stamp last answered (the interrupt scanner), and what
makes up a queue's free slots: its ring size (and whether it runs: the start unit), the slots
consumed (the consumer index) and those claimed by the transmit and by the
receive engine (running counts). Free slots are size + consumed - claimed (a
record is dropped only for a queue that no longer runs, which has no room
anyway, so a drop gives nothing back); size and counts are read without a clock
(distributed RAM) for the three completion queues the descriptor unit asks
about each cycle (``claim``: those of the queues the engines are shown, and
the one its scanner visits), so no count is kept per queue in flip-flops and
nothing is added up for queues nobody asks about. No per-queue state is kept
in flip-flops.

Incarnations. ENABLE starts an incarnation only once everything of the
previous one has landed. The start unit visits the completion queues one a
cycle, comparing ENABLE and the CTRL write stamps (``WriteStamps``) with the
configuration; a queue to stop has no room from the cycle after next (the
engines' room is looked up a cycle ahead). It notes how many slots each engine had
claimed, waits until as many of each engine's records have been written or
dropped, then until every write issued by then has passed the arbiter; it has
the record path, the status path and the doorbell unit clear the queue's
entries (and its arming), and takes LOG_SIZE, VECTOR, MOD_COUNT and MOD_TIME from the table.

Interrupts. A completion queue interrupts when it is armed (by its doorbell)
and either MOD_COUNT completions are unconsumed or one has waited MOD_TIME
cycles; the interrupt disarms it (an arming that comes as it fires is not
lost: the interrupt answers the stamp it saw). A scanner visits one completion queue a
cycle and decides; the timer starts when the scanner first finds the queue
armed with a completion unconsumed (so interrupts come up to ``num_cqs``
cycles late, never early).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..csr import get_field
from ..dma.mux import DmaWriteClient
from ..lib.flags import passed
from ..lib.peek import PeekFifo
from ..lib.ram import WriteStamps, fresh_read, state_memory
from .common import cpl_req_layout
from .desc import RETIRE_PORTS, CqClaimSignature, RetireSignature
from .layouts import CPL_BYTES, Completion

__all__ = ["CplWriter", "PAIR_WAIT"]

#: Cycles a completion record for an even ring slot waits for the record of the
#: next slot, so that the two share one write (beats of 32 bytes or more).
PAIR_WAIT = 8
#: Record writes whose statuses have not come back, at most.
ORDER_DEPTH = 16


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
        # The ring base is read with each record; the control words when an
        # incarnation starts (a cycle after the start unit names the queue,
        # which it does cycles before: block RAM).
        self._base_rd = tables["CQ"].read_port("BASE")
        self._ctrl_rd = tables["CQ"].read_port("CTRL")
        self._time_rd = tables["CQ"].read_port("MOD_TIME")
        self._ctrl_written = tables["CQ"].written("CTRL")
        tables["CQ"].late("STATE")
        tables["CQ"].late("STATUS")
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

        def size_of(log):
            return (Const(1, 17) << log)[:17]

        def exists(cq):
            return (cq < C) if C < 256 else Const(1)

        # ------------------------------------------------------------ memories
        ccfg_l = data.StructLayout({"log": 4, "vector": 5, "count": 16, "time": 32, "on": 1, "drain": 1})
        t0_l = data.StructLayout({"valid": 1, "t0": 32, "arm": 16})
        size_l = data.StructLayout({"log": 4, "on": 1})
        # The configuration is written by the start unit only (as an
        # incarnation starts, stops and has drained), read through a bypass
        # for the cycle it is written.
        m.submodules.ccfg_mem = ccfg_mem = state_memory(shape=ccfg_l, depth=C)
        m.submodules.prod_mem = prod_mem = Memory(shape=16, depth=C, init=[])
        m.submodules.done_mem = done_mem = Memory(shape=16, depth=C, init=[])
        m.submodules.cons_mem = cons_mem = Memory(shape=16, depth=C, init=[])
        m.submodules.t0_mem = t0_mem = Memory(shape=t0_l, depth=C, init=[])
        ccfg_wp = ccfg_mem.write_port()
        prod_wp = prod_mem.write_port()
        done_wp = done_mem.write_port()
        cons_wp = cons_mem.write_port()
        t0_wp = t0_mem.write_port()
        # Arming: each arming doorbell stamps its completion queue (a running
        # count, never 0: the doorbell unit writes ``arm``); an interrupt
        # records the stamp it answered (the interrupt scanner writes
        # ``fired``). A queue is armed while they differ.
        m.submodules.arm_mem = arm_mem = Memory(shape=16, depth=C, init=[])
        m.submodules.fired_mem = fired_mem = Memory(shape=16, depth=C, init=[])
        arm_wp, fired_wp = arm_mem.write_port(), fired_mem.write_port()
        arm_count = Signal(16, init=1)

        # After a reset the start unit sweeps the configuration (the memories
        # keep their contents); until it has, no completion queue runs.
        swept = Signal()

        def is_on(c):
            return c.on & swept

        cl = self.claim
        # Running counts for the drain: slots claimed and records finished
        # (written or dropped), per engine; record writes issued and done.
        claims = [Signal(16, name="claims_tx"), Signal(16, name="claims_rx")]
        finished = [Signal(16, name="finished_tx"), Signal(16, name="finished_rx")]
        writes, statuses = Signal(16), Signal(16)
        fin = [Signal(2, name="fin_tx"), Signal(2, name="fin_rx")]
        m.d.sync += [claims[0].eq(claims[0] + cl.tx.en), claims[1].eq(claims[1] + cl.rx.en),
                     finished[0].eq(finished[0] + fin[0]), finished[1].eq(finished[1] + fin[1])]
        # Clearing a completion queue's entries when its incarnation starts.
        clr_j = Signal(CB)
        # record path, status path, doorbell unit; the claim counts of tx and
        # rx; the interrupt scanner
        clr_req = Signal(6)
        clr_done = Signal(6)

        # ------------------------------------------------------ record path
        # A record is taken from its engine's stream into ``r`` while its
        # queue's producer index, ring base and size are read; the next cycle
        # it is written (alone or with its partner), held for its partner, or
        # dropped.
        r = Signal(cpl_req_layout())
        r_valid = Signal()
        take = Signal()              # ``r`` is done with this cycle
        last_rx = Signal()
        use_rx = Mux(self.i_tx.valid & self.i_rx.valid, ~last_rx, self.i_rx.valid)
        nxt = cpl_req_layout()(Mux(use_rx, self.i_rx.payload, self.i_tx.payload))
        load = (self.i_tx.valid | self.i_rx.valid) & (~r_valid | take) & ~clr_req[0]
        p_prod_rd = prod_mem.read_port(transparent_for=(prod_wp,))
        nxt_cq = Signal(8)
        m.d.comb += nxt_cq.eq(nxt.cq)
        p_cfg = fresh_read(m, ccfg_mem, nxt_cq[:CB], ccfg_wp, en=load, name="p_cfg")
        m.d.comb += [p_prod_rd.addr.eq(nxt_cq[:CB]), p_prod_rd.en.eq(load), self._base_rd.addr.eq(nxt_cq[:CB]),
                     self._base_rd.en.eq(load)]
        with m.If(load):
            m.d.comb += [self.i_rx.ready.eq(use_rx), self.i_tx.ready.eq(~use_rx)]
            m.d.sync += [r.eq(nxt), r_valid.eq(1), last_rx.eq(use_rx)]
        with m.Elif(take):
            m.d.sync += r_valid.eq(0)
        j = r.cq[:CB]
        enabled = exists(r.cq) & is_on(p_cfg)
        r_q = Signal(QB)
        m.d.comb += r_q.eq(Mux(r.kind, N + r.queue, r.queue))
        p_j = p_prod_rd.data
        log_j = p_cfg.log
        size_j = size_of(log_j)

        # Each write's CQ, record count and queues, in request order, for the
        # interrupts and the queues' drain.
        order = PeekFifo(m, data.StructLayout({"cq": CB, "two": 1, "q0": QB, "q1": QB}), ORDER_DEPTH, "order")
        o_w = order.w_data

        rec = Signal(Completion)
        out0 = Signal(Completion)
        out1 = Signal(Completion)
        two = Signal()               # the write in progress carries out0 and out1
        sending = Signal()
        half = Signal()
        slot = Signal()              # ``r`` takes the next slot of its ring
        req = self.dma.req
        addr_j = self._base_rd.data + ((p_j & (size_j - 1)) << 4)
        m.d.comb += [rec.len.eq(r.len), rec.index.eq(r.index), rec.queue.eq(r.queue), rec.status.eq(r.status),
                     rec.kind.eq(r.kind), rec.ndesc.eq(r.ndesc), rec.timestamp.eq(self.now),
                     rec.phase.eq(~p_j.bit_select(log_j, 1))]
        m.d.comb += [prod_wp.addr.eq(j), prod_wp.data.eq(p_j + 1), prod_wp.en.eq(slot)]

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
        h_kind = Signal()
        h_age = Signal(range(PAIR_WAIT + 1))
        drop = Signal()
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
                m.d.comb += [order.w_en.eq(1), take.eq(pair), slot.eq(pair),
                             fin[0].eq((h_kind == 0) + (pair & (r.kind == 0))),
                             fin[1].eq((h_kind == 1) + (pair & (r.kind == 1)))]
                m.d.sync += [sending.eq(1), held.eq(0), two.eq(pair), out1.eq(rec), half.eq(0)]
        with m.Elif(~sending & r_valid):
            with m.If(~enabled):
                m.d.comb += [take.eq(1), drop.eq(1), self.dropped.eq(1), self.retire[2].en.eq(1),
                             self.retire[2].q.eq(r_q), fin[0].eq(r.kind == 0), fin[1].eq(r.kind == 1)]
            with m.Elif(order.w_rdy):
                if pairs:
                    with m.If(~p_j[0]):
                        m.d.comb += [take.eq(1), slot.eq(1)]
                        m.d.sync += [held.eq(1), h_j.eq(j), h_addr.eq(addr_j), out0.eq(rec), h_q.eq(r_q),
                                     h_kind.eq(r.kind), h_age.eq(0)]
                    with m.Else():
                        m.d.comb += issue(addr_j, j, 0, r_q)
                else:
                    m.d.comb += issue(addr_j, j, 0, r_q)
                with m.If(req.valid & req.ready):
                    m.d.comb += [take.eq(1), slot.eq(1), order.w_en.eq(1), fin[0].eq(r.kind == 0),
                                 fin[1].eq(r.kind == 1)]
                    m.d.sync += [sending.eq(1), out0.eq(rec), two.eq(0), half.eq(0)]
        with m.If(order.w_en):
            m.d.sync += writes.eq(writes + 1)
        with m.If(clr_req[0] & ~slot):
            m.d.comb += [prod_wp.addr.eq(clr_j), prod_wp.data.eq(0), prod_wp.en.eq(1), clr_done[0].eq(1)]

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

        # ------------------------------------------------------ status path
        # Written (the TLP passed the arbiter): the records count as done. The
        # count of the head write's queue is read a cycle ahead (the next
        # write's as a status comes), so statuses are taken every cycle.
        st = self.dma.resp
        m.d.comb += st.ready.eq(1)
        m.d.comb += order.r_en.eq(st.valid)
        o_r = order.head
        s_done_rd = done_mem.read_port(transparent_for=(done_wp,))
        s_addr = Signal(CB)
        s_read = Signal(CB)
        m.d.comb += [s_addr.eq(Mux(st.valid, order.next.cq, o_r.cq)), s_done_rd.addr.eq(s_addr)]
        m.d.sync += s_read.eq(s_addr)
        # After an empty FIFO the head may be newer than the last read: a write
        # is always far more than a cycle away from its status, so the head has
        # been read by then.
        s_new = Signal(16)
        m.d.comb += s_new.eq(s_done_rd.data + 1 + o_r.two)
        with m.If(st.valid):
            m.d.comb += [done_wp.addr.eq(o_r.cq), done_wp.data.eq(s_new), done_wp.en.eq(1)]
            m.d.sync += statuses.eq(statuses + 1)
        with m.Elif(clr_req[1]):
            m.d.comb += [done_wp.addr.eq(clr_j), done_wp.data.eq(0), done_wp.en.eq(1), clr_done[1].eq(1)]
        m.d.comb += [self.retire[0].en.eq(st.valid), self.retire[0].q.eq(o_r.q0),
                     self.retire[1].en.eq(st.valid & o_r.two), self.retire[1].q.eq(o_r.q1)]

        # ------------------------------------------------------ doorbells
        # A consumer index between the last one and the records written; the
        # slots it frees go back to the queue's free count.
        d_valid = Signal()
        d_j = Signal(CB)
        d_cons = Signal(16)
        d_arm = Signal()
        db_cons = get_field(dbs.data, db_reg, "CONS")
        db_arm = get_field(dbs.data, db_reg, "ARM")
        d_cons_rd = cons_mem.read_port(transparent_for=(cons_wp,))
        d_done_rd = done_mem.read_port(transparent_for=(done_wp,))
        m.d.comb += [d_cons_rd.addr.eq(dbs.entry[:CB]), d_done_rd.addr.eq(dbs.entry[:CB])]
        m.d.sync += [d_valid.eq(dbs.stb & exists(dbs.entry)), d_j.eq(dbs.entry[:CB]), d_cons.eq(db_cons),
                     d_arm.eq(db_arm)]
        d_cfg = fresh_read(m, ccfg_mem, dbs.entry[:CB], ccfg_wp, name="d_cfg")
        # A status in the cycle of the check is not seen: its record has not
        # reached host memory, so no consumer index can rightly cover it yet.
        d_done = d_done_rd.data
        unconsumed = (d_done - d_cons_rd.data)[:16]
        delta = (d_cons - d_cons_rd.data)[:16]
        d_ok = is_on(d_cfg) & (delta <= unconsumed)
        m.d.comb += self.db_ignored.eq((dbs.stb & ~exists(dbs.entry)) | (d_valid & ~d_ok))
        with m.If(d_valid & d_ok):
            m.d.comb += [cons_wp.addr.eq(d_j), cons_wp.data.eq(d_cons), cons_wp.en.eq(1)]
        with m.Elif(clr_req[2]):
            m.d.comb += [cons_wp.addr.eq(clr_j), cons_wp.data.eq(0), cons_wp.en.eq(1), clr_done[2].eq(1)]
        # The arming stamp is written with the consumer index (and cleared with it).
        m.d.comb += [arm_wp.addr.eq(cons_wp.addr), arm_wp.en.eq(cons_wp.en & (~(d_valid & d_ok) | d_arm)),
                     arm_wp.data.eq(Mux(d_valid & d_ok, arm_count, 0))]
        with m.If(d_valid & d_ok & d_arm):
            nxt_arm = (arm_count + 1)[:16]
            m.d.sync += arm_count.eq(Mux(nxt_arm == 0, 1, nxt_arm))

        # ------------------------------------------------------ free slots
        # size + consumed - claimed, for the completion queue of the queue
        # each engine is shown and for the scanner's; the counts written this
        # cycle are seen from the next. For the engines the count is taken a
        # cycle ahead: what the look-up gives (saturated at 3) is registered
        # with the queue it was for, and this cycle's answer is that less the
        # claims made on that queue last cycle (by either engine); it is
        # known only while the engine still asks for the same completion
        # queue (after a change, one cycle has neither room nor full). Slots
        # consumed meanwhile only add room, so the answer is never more than
        # there is.
        log_mem = Memory(shape=size_l, depth=C, init=[])
        claimed = [Memory(shape=16, depth=C, init=[]) for _ in range(2)]
        m.submodules.log_mem = log_mem
        m.submodules.claimed_tx_mem, m.submodules.claimed_rx_mem = claimed
        log_wp = log_mem.write_port()
        claimed_wp = [mem.write_port() for mem in claimed]
        asks = (cl.tx.cq, cl.rx.cq, cl.scan)
        free_of = []
        on_of = []
        claimed_at = []
        for k, ask in enumerate(asks):
            rds = [mem.read_port(domain="comb") for mem in (log_mem, cons_mem, *claimed)]
            for rd in rds:
                m.d.comb += rd.addr.eq(ask[:CB])
            f = Signal(16, name=f"free_{('tx', 'rx', 'scan')[k]}")
            lg = size_l(rds[0].data)
            m.d.comb += f.eq(size_of(lg.log) + rds[1].data - rds[2].data - rds[3].data)
            free_of.append(f)
            on_of.append(exists(ask) & is_on(lg))
            claimed_at.append(rds[2 + k].data if k < 2 else None)
        m.d.comb += cl.room[2].eq(on_of[2] & (free_of[2] != 0))
        shared = cl.tx.cq == cl.rx.cq
        for k, (own, other) in enumerate(((cl.tx, cl.rx), (cl.rx, cl.tx))):
            sn = ("tx", "rx")[k]
            ahead = Signal(2, name=f"ahead_{sn}")      # free slots seen last cycle, at most 3
            ahead_cq = Signal(8, name=f"ahead_cq_{sn}")
            used = Signal(2, name=f"used_{sn}")        # claims on that queue last cycle
            m.d.sync += [ahead.eq(Mux(~on_of[k], 0, Mux(free_of[k][2:] != 0, 3, free_of[k][:2]))),
                         ahead_cq.eq(own.cq), used.eq(own.en + (other.en & shared))]
            known = own.cq == ahead_cq
            m.d.comb += [cl.room[k].eq(known & (ahead > used)), cl.full[k].eq(known & (ahead <= used))]
            if k == 1:
                m.d.comb += cl.room2.eq(known & (ahead > used + 1))
        # Each claim count is written by its engine's claims, cleared on a free cycle.
        for k, c in enumerate((cl.tx, cl.rx)):
            with m.If(c.en):
                m.d.comb += [claimed_wp[k].addr.eq(c.cq[:CB]), claimed_wp[k].data.eq(claimed_at[k] + 1),
                             claimed_wp[k].en.eq(1)]
            with m.Elif(clr_req[3 + k]):
                m.d.comb += [claimed_wp[k].addr.eq(clr_j), claimed_wp[k].data.eq(0), claimed_wp[k].en.eq(1),
                             clr_done[3 + k].eq(1)]

        # ------------------------------------------------------ interrupts
        # One completion queue a cycle: armed, with completions unconsumed,
        # MOD_COUNT of them or the oldest waiting MOD_TIME cycles: interrupt.
        i_j = Signal(CB)
        i_q = Signal(CB)
        m.d.sync += [i_j.eq(Mux(i_j == C - 1, 0, i_j + 1)), i_q.eq(i_j)]
        i_done_rd = done_mem.read_port(transparent_for=(done_wp,))
        i_cons_rd = cons_mem.read_port(transparent_for=(cons_wp,))
        i_t0_rd = t0_mem.read_port(transparent_for=(t0_wp,))
        m.d.comb += [i_done_rd.addr.eq(i_j), i_cons_rd.addr.eq(i_j), i_t0_rd.addr.eq(i_j)]
        i_cfg = fresh_read(m, ccfg_mem, i_j, ccfg_wp, name="i_cfg")
        i_arm_rd = arm_mem.read_port(transparent_for=(arm_wp,))
        i_fired_rd = fired_mem.read_port(transparent_for=(fired_wp,))
        m.d.comb += [i_arm_rd.addr.eq(i_j), i_fired_rd.addr.eq(i_j)]
        i_arm = i_arm_rd.data
        i_unc = (i_done_rd.data - i_cons_rd.data)[:16]
        i_k = Mux(i_cfg.count == 0, 1, i_cfg.count)
        i_pending = is_on(i_cfg) & (i_arm != i_fired_rd.data) & (i_unc != 0)
        # The timer runs from the first visit that found the queue armed with
        # a completion unconsumed, under the same arming.
        i_timing = i_t0_rd.data.valid & (i_t0_rd.data.arm == i_arm)
        fire = Signal()
        m.d.comb += fire.eq(i_pending & ((i_unc >= i_k) | ((i_cfg.time != 0) & i_timing
                                                             & ((self.now - i_t0_rd.data.t0)[:32] >= i_cfg.time))))
        m.d.comb += t0_wp.addr.eq(i_q)
        with m.If(fire | ~i_pending):
            m.d.comb += [t0_wp.data.valid.eq(0), t0_wp.en.eq(1)]
        with m.Elif(~i_timing):
            m.d.comb += [t0_wp.data.valid.eq(1), t0_wp.data.t0.eq(self.now), t0_wp.data.arm.eq(i_arm),
                         t0_wp.en.eq(1)]
        with m.If(fire):
            m.d.comb += [fired_wp.addr.eq(i_q), fired_wp.data.eq(i_arm), fired_wp.en.eq(1)]
        with m.Elif(clr_req[5]):
            m.d.comb += [fired_wp.addr.eq(clr_j), fired_wp.data.eq(0), fired_wp.en.eq(1), clr_done[5].eq(1)]
        m.d.comb += [self.irq.eq(Mux(fire, (Const(1, cfg.msi_vectors) << i_cfg.vector)[:cfg.msi_vectors], 0)),
                     self.irqs.eq(fire)]

        # Registers read through the table's window: the entry being read, a
        # cycle later.
        re = tab.r_entry[:CB]
        m_prod = prod_mem.read_port(transparent_for=(prod_wp,))
        m_cons = cons_mem.read_port(transparent_for=(cons_wp,))
        m_arm = arm_mem.read_port(transparent_for=(arm_wp,))
        m_fired = fired_mem.read_port(transparent_for=(fired_wp,))
        m.d.comb += [m_prod.addr.eq(re), m_cons.addr.eq(re), m_arm.addr.eq(re), m_fired.addr.eq(re)]
        m_cfg = fresh_read(m, ccfg_mem, re, ccfg_wp, name="m_cfg")
        # A CTRL write not yet taken shows as draining, not running.
        stamps = WriteStamps(m, C, self._ctrl_written.stb, self._ctrl_written.entry[:CB], "ctrl")
        _, m_stale = stamps.read(re, "m")
        m.d.comb += [tab.ro_state.eq(Cat(m_prod.data, m_cons.data)),
                     tab.ro_status.eq(Cat(m_arm.data != m_fired.data, is_on(m_cfg) & ~m_stale,
                                          (m_cfg.drain & swept) | m_stale | ~swept))]

        # ------------------------------------------------------ start and drain
        # A scanner visits one completion queue a cycle, comparing ENABLE
        # (and the CTRL write stamps) with its configuration. A queue to stop
        # is stopped at once (it has no room from the cycle after next); one
        # draining, or enabled and not running, is taken: note the slots each
        # engine has claimed, wait until as many records of each have been
        # written or dropped, then until the writes issued by then are done;
        # then (if ENABLE is set) clear its entries and start it with the
        # control words of now.
        u_scan = Signal(CB)
        u_read = Signal(CB)
        u_addr = Signal(CB)
        u_j = Signal(CB)
        mark = [Signal(16, name="mark_tx"), Signal(16, name="mark_rx")]
        mark_w = Signal(16)
        pending_clr = Signal(6)
        m.d.comb += [clr_j.eq(u_j), clr_req.eq(pending_clr)]
        m.d.comb += [self._ctrl_rd.addr.eq(u_addr), self._time_rd.addr.eq(u_addr)]
        m.d.sync += u_read.eq(u_addr)
        s_ctrl = self._ctrl_rd.data
        u_en = get_field(s_ctrl, ctrl_reg, "ENABLE")
        u_cfg = fresh_read(m, ccfg_mem, u_addr, ccfg_wp, own=True, name="u_cfg")
        u_stamp, u_stale = stamps.read(u_addr, "u", own=True)
        new_cfg = Signal(ccfg_l)
        m.d.comb += [new_cfg.eq(u_cfg), ccfg_wp.data.eq(new_cfg),
                     log_wp.addr.eq(ccfg_wp.addr), log_wp.en.eq(ccfg_wp.en),
                     log_wp.data.log.eq(new_cfg.log), log_wp.data.on.eq(new_cfg.on)]
        ev = self._ctrl_written
        scan_next = Mux(u_scan == C - 1, 0, u_scan + 1)
        with m.FSM(name="cq_start"):
            with m.State("Sweep"):
                m.d.comb += [u_addr.eq(u_scan), ccfg_wp.addr.eq(u_scan), ccfg_wp.en.eq(1), new_cfg.eq(0)]
                m.d.sync += u_scan.eq(scan_next)
                with m.If(u_scan == C - 1):
                    m.d.sync += swept.eq(1)
                    m.next = "Idle"
            with m.State("Idle"):
                m.d.comb += u_addr.eq(u_scan)
                m.d.sync += u_scan.eq(scan_next)
                with m.If(u_cfg.drain | (u_cfg.on & (~u_en | u_stale)) | (~u_cfg.on & u_en)):
                    m.d.comb += u_addr.eq(u_read)
                    m.d.sync += [u_j.eq(u_read), u_scan.eq(u_scan)]
                    with m.If(u_cfg.on):
                        m.d.comb += [ccfg_wp.addr.eq(u_read), ccfg_wp.en.eq(1), new_cfg.on.eq(0),
                                     new_cfg.drain.eq(1)]
                    m.next = "Stopping"
                with m.Elif(u_stale):
                    # A CTRL write to a queue that stays stopped: taken.
                    m.d.comb += stamps.take(u_read, u_stamp)
            with m.State("Stopping"):
                # The engines' room was looked up a cycle ahead: they may
                # still claim in this cycle, not after it.
                m.d.comb += u_addr.eq(u_j)
                m.next = "Mark"
            with m.State("Mark"):
                # The claims up to the stop (none come after it).
                m.d.comb += u_addr.eq(u_j)
                m.d.sync += [mark[0].eq(claims[0]), mark[1].eq(claims[1])]
                m.next = "Records"
            with m.State("Records"):
                m.d.comb += u_addr.eq(u_j)
                with m.If(passed(finished[0], mark[0]) & passed(finished[1], mark[1])):
                    m.d.sync += mark_w.eq(writes)
                    m.next = "Writes"
            with m.State("Writes"):
                m.d.comb += u_addr.eq(u_j)
                with m.If(passed(statuses, mark_w)):
                    with m.If(u_en):
                        m.d.sync += pending_clr.eq(0b111111)
                        m.next = "Clear"
                    with m.Else():
                        m.d.comb += [ccfg_wp.addr.eq(u_j), ccfg_wp.en.eq(1), new_cfg.drain.eq(0),
                                     *stamps.take(u_j, u_stamp)]
                        m.next = "Idle"
            with m.State("Clear"):
                m.d.comb += u_addr.eq(u_j)
                # (Done when every clear has been written: from a register,
                # not from this cycle's write ports.)
                m.d.sync += pending_clr.eq(pending_clr & ~clr_done)
                with m.If(pending_clr == 0):
                    m.next = "Start"
            with m.State("Start"):
                m.d.comb += u_addr.eq(u_j)
                # A CTRL written in the cycle it was read: start on the next visit.
                with m.If(~(ev.stb & (ev.entry[:CB] == u_j))):
                    m.d.comb += [ccfg_wp.addr.eq(u_j), ccfg_wp.en.eq(1), *stamps.take(u_j, u_stamp),
                                 new_cfg.log.eq(get_field(s_ctrl, ctrl_reg, "LOG_SIZE")),
                                 new_cfg.vector.eq(get_field(s_ctrl, ctrl_reg, "VECTOR")),
                                 new_cfg.count.eq(get_field(s_ctrl, ctrl_reg, "MOD_COUNT")),
                                 new_cfg.time.eq(self._time_rd.data), new_cfg.on.eq(u_en), new_cfg.drain.eq(0)]
                m.next = "Idle"
        return m
