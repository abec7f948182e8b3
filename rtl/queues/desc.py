"""Descriptor rings: doorbells, descriptor fetch and the per-queue cache.

Queues 0 .. N-1 are the transmit queues, N .. 2N-1 the receive queues. A doorbell
sets a queue's tail. The fetcher reads, by DMA, up to ``desc_cache`` descriptors
at a time from queues whose tail is ahead of what was fetched and whose cache
has room for half of it (or for all that is pending), into a cache of
``desc_cache`` slots per queue in block RAM; it checks each against the
protection table on the way in. The transmit and receive engines each see, per
queue, whether a complete chain (descriptors up to one without MORE) is cached;
they name the queue and descriptor to look at a cycle ahead (the cache is read
synchronously), and pop the chain when done. Chains are recorded as their last
descriptor arrives (length and first error) in a small per-queue FIFO, also in
block RAM, so finding one costs no search. The rings' registers come from the
register tables (``TXQ``, ``RXQ`` and their doorbell pages): a ring's base is
read when a fetch is issued, its control word when an incarnation starts.

A queue stops in error (its ERROR register says why) when a descriptor fetch
fails or a chain cannot end within the ring or the cache; re-enabling the queue
restarts it with both indices at 0.

Incarnations. Setting ENABLE starts an incarnation only once nothing of the
previous one is in flight: no descriptor fetch, no chain held by an engine,
no completion not yet written or dropped (``outstanding``). The incarnation
takes its ring size, completion queue and protection domain from CTRL when it
starts and keeps them, so whatever it started is completed where it began.
A fetch is tagged with the queue's generation and is used only while the
queue is still in the incarnation that issued it.

Doorbells: a producer index is taken only if it lies between what the NIC has
already fetched and the head plus the ring size; anything else is ignored and
counted. A chain is started by an engine only when its completion queue has a
slot for its completion (``room``; the engine ``claim``s it), so a completion
queue that its owner does not drain holds only the queues bound to it.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect, flipped

from ..csr import get_field
from ..dma.layouts import read_data_layout
from ..dma.mux import DmaReadClient
from ..lib.stream import StreamFifo
from ..lib.arbiter import lowest_set, round_robin
from .common import ERROR_CHAIN_TOO_LONG, protection_ok
from .layouts import DESC_BYTES, Descriptor, DescFlags, QueueStatus

__all__ = ["DescQueues", "ChainPort", "CqClaimSignature", "RetireSignature", "RETIRE_PORTS"]

#: Completions the completion writer retires per cycle at most.
RETIRE_PORTS = 3


class ChainPort(wiring.Signature):
    """An engine's view of one side's queues (engine side is ``In``).

    running  Out(N): queue is enabled and not in error
    ready    Out(N): queue has a complete chain cached (and is running)
    fetching Out(N): descriptors the host posted are still on their way in
    room     Out(N): the queue may claim a slot of its completion queue this cycle
    full     Out(N): the queue's completion queue has no free slot at all
    sel, idx In: the queue, and the descriptor of its head chain, to look at
             next cycle (the chains and descriptors are in block RAM)
    len      Out: descriptors in the head chain of the queue looked at
             (``sel`` of the previous cycle, "the shown queue");
             err: its QueueStatus (first bad descriptor)
    bytes    Out(16): its total buffer length (saturating at 0xFFFF)
    desc     Out(Descriptor): its descriptor ``idx`` (of the previous cycle)
    head     Out(16): ring index of its first descriptor
    cq       Out(8): the shown queue's completion queue (of its incarnation)
    claim    In(1): the engine starts the shown queue's chain: its completion slot is taken
    hold     In(1): the engine is inside a chain of the shown queue
    pop      In(1): the shown queue's chain is done; a look-up in the same
             cycle already sees the next chain
    """

    def __init__(self, n, d):
        super().__init__({
            "running": Out(n), "ready": Out(n), "fetching": Out(n), "sel": In(range(max(n, 2))),
            "len": Out(range(d + 1)), "err": Out(4), "bytes": Out(16),
            "head": Out(16), "cq": Out(8), "room": Out(n), "full": Out(n), "idx": In(range(max(d, 2))),
            "desc": Out(Descriptor),
            "claim": In(1), "hold": In(1), "pop": In(1),
        })


class CqClaimSignature(wiring.Signature):
    """Completion slots, queue side (``Out``): ``room``/``room2`` say which
    completion queues have at least one / two free slots; ``tx``/``rx`` claim
    one slot each (``en`` with the ``cq`` number)."""

    def __init__(self, num_cqs):
        claim = wiring.Signature({"en": Out(1), "cq": Out(8)})
        super().__init__({"room": In(num_cqs), "room2": In(num_cqs), "tx": Out(claim), "rx": Out(claim)})


class RetireSignature(wiring.Signature):
    """A chain's completion was written or dropped: queue ``q`` (transmit
    queues first) has one chain fewer outstanding."""

    def __init__(self, num_queues):
        super().__init__({"en": Out(1), "q": Out(range(2 * num_queues))})


class DescQueues(wiring.Component):
    """
    dma    Out(DmaReadClient): descriptor fetches
    tx, rx Out(ChainPort): the engines' views
    claim  Out(CqClaimSignature): completion slots, with the completion writer
    retire In(RetireSignature) x RETIRE_PORTS: completions written or dropped
    stats  counter pulses: prot, zero, db_ignored, fault
    """

    def __init__(self, config, tables, mrs):
        """``tables``: the register tables of the transmit and receive queues
        and of their doorbell pages (``TXQ``, ``RXQ``, ``TXQ_DB``, ``RXQ_DB``);
        ``mrs``: the memory regions' registers."""
        self._config = config
        self._tables = tables
        self._mrs = mrs
        n, d = config.num_queues, config.desc_cache
        # Ring bases are read when a fetch is issued, the control word when an
        # incarnation starts.
        self._base_rd = [tables[k].read_port("BASE") for k in ("TXQ", "RXQ")]
        self._ctrl_rd = [tables[k].read_port("CTRL", domain="comb") for k in ("TXQ", "RXQ")]
        self._enabled = [tables[k].flag("CTRL", "ENABLE") for k in ("TXQ", "RXQ")]
        super().__init__({
            "dma": Out(DmaReadClient(config.data_width)),
            "tx": Out(ChainPort(n, d)),
            "rx": Out(ChainPort(n, d)),
            "claim": Out(CqClaimSignature(config.num_cqs)),
            "retire": In(RetireSignature(n)).array(RETIRE_PORTS),
            "prot": Out(1), "zero": Out(1), "db_ignored": Out(1), "fault": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        N, D = cfg.num_queues, cfg.desc_cache
        Q = 2 * N
        QB = (Q - 1).bit_length()
        DB = (D - 1).bit_length()
        W = cfg.data_width
        tabs = self._tables
        t_q = [tabs["TXQ"], tabs["RXQ"]]
        ctrl_reg = t_q[0].block.reg("CTRL")

        # ----------------------------------------------------- per-queue state
        tail = [Signal(16, name=f"tail{q}") for q in range(Q)]
        fetch = [Signal(16, name=f"fetch{q}") for q in range(Q)]
        head = [Signal(16, name=f"head{q}") for q in range(Q)]
        c_head = [Signal(DB, name=f"c_head{q}") for q in range(Q)]
        c_count = [Signal(DB + 1, name=f"c_count{q}") for q in range(Q)]
        c_infl = [Signal(DB + 1, name=f"c_infl{q}") for q in range(Q)]
        error = [Signal(4, name=f"error{q}") for q in range(Q)]
        gen = [Signal(8, name=f"gen{q}") for q in range(Q)]
        on = [Signal(name=f"on{q}") for q in range(Q)]              # an incarnation is running
        l_log = [Signal(4, name=f"l_log{q}") for q in range(Q)]     # its configuration, taken at start
        l_cq = [Signal(8, name=f"l_cq{q}") for q in range(Q)]
        l_pd = [Signal(4, name=f"l_pd{q}") for q in range(Q)]
        outst = [Signal(8, name=f"outstanding{q}") for q in range(Q)]   # fetches + chains not yet retired
        cur_len = [Signal(DB + 1, name=f"cur_len{q}") for q in range(Q)]   # chain being cached
        cur_err = [Signal(4, name=f"cur_err{q}") for q in range(Q)]
        cur_bytes = [Signal(16, name=f"cur_bytes{q}") for q in range(Q)]
        ch_head = [Signal(DB, name=f"ch_head{q}") for q in range(Q)]       # cached chains
        ch_count = [Signal(DB + 1, name=f"ch_count{q}") for q in range(Q)]
        running = [Signal(name=f"running{q}") for q in range(Q)]
        quiet = [Signal(name=f"quiet{q}") for q in range(Q)]
        enabled = [self._enabled[q >= N][q % N] for q in range(Q)]    # CTRL.ENABLE as last written
        for q in range(Q):
            m.d.comb += running[q].eq(on[q] & (error[q] == 0))
        # Registers read through the tables' windows: the entry being read.
        for side in range(2):
            t = t_q[side]
            r = t.r_entry
            m.d.comb += [
                t.ro_state.eq(Array([Cat(head[side * N + i], tail[side * N + i]) for i in range(N)])[r]),
                t.ro_error.eq(Array([Cat(error[side * N + i], Const(0, 4), on[side * N + i],
                                         ~on[side * N + i] & ~quiet[side * N + i]) for i in range(N)])[r]),
            ]
        size = [(Const(1, 17) << l_log[q])[:17] for q in range(Q)]

        # Per-queue updates from several places in one cycle, summed here.
        w_q = Signal(QB)          # cache write: queue
        w_en = Signal()
        pop_q = [Signal(QB, name="pop_tx_q"), Signal(QB, name="pop_rx_q")]
        pop_en = [Signal(name="pop_tx"), Signal(name="pop_rx")]
        pop_n = [Signal(DB + 1, name="pop_tx_n"), Signal(DB + 1, name="pop_rx_n")]
        f_q = Signal(QB)          # fetch issued: queue and count
        f_en = Signal()
        f_n = Signal(DB + 1)
        fault_q = Signal(QB)
        fault_en = Signal()
        fault_code = Signal(4)

        # ------------------------------------------------------------ doorbells
        # One doorbell a cycle at most (they come over the register bus).
        dbs = [tabs["TXQ_DB"].wo_db, tabs["RXQ_DB"].wo_db]
        db_stb = dbs[0].stb | dbs[1].stb
        db_q = Signal(QB)
        db_tail = Signal(16)
        m.d.comb += [db_q.eq(Mux(dbs[1].stb, Cat(dbs[1].entry[:QB - 1], Const(1, 1)),
                                 Cat(dbs[0].entry[:QB - 1], Const(0, 1)))),
                     db_tail.eq(Mux(dbs[1].stb, dbs[1].data[:16], dbs[0].data[:16]))]
        # Between what was fetched and a full ring ahead of the head.
        db_head = Array(head)[db_q]
        ahead = (db_tail - db_head)[:16]
        db_ok = Array(on)[db_q] & (ahead <= Array(size)[db_q]) & (ahead >= (Array(fetch)[db_q] - db_head)[:16])
        m.d.comb += self.db_ignored.eq(db_stb & ~db_ok)
        for q in range(Q):
            with m.If(db_stb & db_ok & (db_q == q)):
                m.d.sync += tail[q].eq(db_tail)

        # ---------------------------------------------------------------- fetch
        fetch_l = data.StructLayout({"q": QB, "gen": 8, "n": DB + 1})
        inflight = m.submodules.inflight = fifo.SyncFIFOBuffered(width=fetch_l.size, depth=8)
        w_fetch = Signal(fetch_l)
        r_fetch = Signal(fetch_l)
        m.d.comb += [inflight.w_data.eq(w_fetch), r_fetch.eq(inflight.r_data)]
        need = Signal(Q)
        free = [Signal(DB + 1, name=f"free{q}") for q in range(Q)]
        # A queue is fetched for once half its cache is free (or all it has
        # pending fits): descriptors come several to a read, not one by one.
        half = max(1, D // 2)
        for q in range(Q):
            pend = (tail[q] - fetch[q])[:16]
            want = Mux(pend < half, pend, half)
            m.d.comb += [free[q].eq(D - c_count[q] - c_infl[q]),
                         need[q].eq(running[q] & (pend != 0) & (free[q] >= want))]
        # The round robin's choice is registered; the next cycle the queue's
        # counters give the fetch's size, if it still needs one.
        last_f = Signal(QB)
        rr = round_robin(m, Q, need, last_f)
        pick = Signal(QB)
        picked = Signal()
        m.d.sync += [pick.eq(rr), picked.eq(need != 0)]
        p_tail = Array(tail)[pick]
        p_fetch = Array(fetch)[pick]
        p_size = Array(size)[pick]
        p_free = Array(free)[pick]
        pending = Signal(17)
        to_end = Signal(17)
        n_fetch = Signal(DB + 1)
        m.d.comb += [
            pending.eq((p_tail - p_fetch)[:16]),
            to_end.eq(p_size - (p_fetch & (p_size - 1))),
        ]
        lim = Mux(pending < to_end, pending, to_end)
        m.d.comb += n_fetch.eq(Mux(lim < p_free, lim, p_free))
        # A fetch is decided (the queue's counters move, its record enters the
        # in-flight FIFO) while its ring base is read from the table; the
        # request goes out from a register the next cycle.
        req = self.dma.req
        b_valid = Signal()
        b_rx = Signal()
        b_off = Signal(20)
        b_len = Signal(DB + 5)
        b_free = ~b_valid | req.ready
        commit = picked & need.bit_select(pick, 1) & inflight.w_rdy & b_free
        m.d.comb += [w_fetch.q.eq(pick), w_fetch.gen.eq(Array(gen)[pick]), w_fetch.n.eq(n_fetch)]
        for side in range(2):
            rp = self._base_rd[side]
            m.d.comb += [rp.addr.eq(pick[:QB - 1]), rp.en.eq(commit)]
        m.d.comb += [req.valid.eq(b_valid),
                     req.payload.addr.eq(Mux(b_rx, self._base_rd[1].data, self._base_rd[0].data) + b_off),
                     req.payload.len.eq(b_len)]
        with m.If(req.ready):
            m.d.sync += b_valid.eq(0)
        with m.If(commit):
            m.d.comb += [inflight.w_en.eq(1), f_en.eq(1), f_q.eq(pick), f_n.eq(n_fetch)]
            m.d.sync += [last_f.eq(pick), b_valid.eq(1), b_rx.eq(pick[QB - 1]),
                         b_off.eq((p_fetch & (p_size - 1)) << 4), b_len.eq(n_fetch << 4)]

        # Descriptors arrive as a packed byte stream; take 16 bytes at a time.
        # With beats of several descriptors they are taken one per cycle, more
        # slowly than they arrive: a FIFO of a whole fetch's beats takes them
        # off the read engine's data path at once, so that payload reads
        # queued behind them are not held up.
        if W > 128:
            m.submodules.desc_beats = beats = StreamFifo(read_data_layout(W), max(2, D * DESC_BYTES // (W // 8)))
            connect(m, flipped(self.dma.data), beats.i_stream)
            resp = beats.o_stream
        else:
            resp = self.dma.data
        r_q = r_fetch.q
        r_gen = r_fetch.gen
        word = Signal(8 * DESC_BYTES)
        word_ok = Signal()            # a whole descriptor is in ``word`` this cycle
        word_take = Signal()          # and it is consumed
        if W <= 128:
            per = 128 // W            # beats per descriptor
            acc = Signal(128)
            got = Signal(range(per + 1))
            if per == 1:
                m.d.comb += [word.eq(resp.payload.data), word_ok.eq(resp.valid & (resp.payload.nbytes != 0)),
                             resp.ready.eq(1)]
            else:
                m.d.comb += [word.eq(Cat(acc[:128 - W], resp.payload.data)),
                             word_ok.eq(resp.valid & (got == per - 1) & (resp.payload.nbytes != 0)),
                             resp.ready.eq(1)]
                with m.If(resp.valid):
                    with m.If((got == per - 1) | resp.payload.last):
                        m.d.sync += got.eq(0)
                    with m.Else():
                        m.d.sync += [acc.word_select(got, W).eq(resp.payload.data), got.eq(got + 1)]
            end_of_group = resp.valid & resp.payload.last
        else:
            per = W // 128            # descriptors per beat
            sub = Signal(range(per))
            in_beat = resp.payload.nbytes >> 4
            m.d.comb += [word.eq(resp.payload.data.word_select(sub, 128)),
                         word_ok.eq(resp.valid & (sub < in_beat))]
            last_sub = (sub == per - 1) | (sub + 1 >= in_beat)
            with m.If(resp.valid):
                with m.If(last_sub):
                    m.d.comb += resp.ready.eq(1)
                    m.d.sync += sub.eq(0)
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
            end_of_group = resp.valid & resp.ready & resp.payload.last
        m.d.comb += word_take.eq(word_ok)

        desc = Signal(Descriptor)
        m.d.comb += desc.eq(word)
        current = (r_gen == Array(gen)[r_q]) & Array(on)[r_q]
        is_rx = r_q >= N
        pd = Array(l_pd)[r_q]
        ok_tx = protection_ok(m, self._mrs, pd, desc.addr, desc.len, write=False)
        ok_rx = protection_ok(m, self._mrs, pd, desc.addr, desc.len, write=True)
        code = Signal(4)
        m.d.comb += code.eq(Mux(desc.len == 0, QueueStatus.ZERO_LENGTH,
                                Mux(Mux(is_rx, ok_rx, ok_tx), QueueStatus.OK, QueueStatus.PROTECTION)))
        slot = (Array(c_head)[r_q] + Array(c_count)[r_q])[:DB]
        r_len = Array(cur_len)[r_q] + 1
        r_err = Mux(Array(cur_err)[r_q] != 0, Array(cur_err)[r_q], code)
        r_end = (desc.flags & DescFlags.MORE) == 0
        r_sum = Signal(17)
        m.d.comb += r_sum.eq(Array(cur_bytes)[r_q] + desc.len[:16])
        r_bytes = Mux((desc.len[16:] != 0) | r_sum[16], 0xFFFF, r_sum[:16])
        chain_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16})
        rams = []
        for side in range(2):
            mem = Memory(shape=Descriptor, depth=N * D, init=[])
            chains = Memory(shape=chain_l, depth=N * D, init=[])
            m.submodules[f"cache_{'rx' if side else 'tx'}"] = mem
            m.submodules[f"chains_{'rx' if side else 'tx'}"] = chains
            wp = mem.write_port()
            cwp = chains.write_port()
            rams.append((mem, chains, wp, cwp))
            within = r_q[:QB - 1]     # the queue's number on its side
            ch_slot = (Array(ch_head)[r_q] + Array(ch_count)[r_q])[:DB]
            m.d.comb += [wp.addr.eq(Cat(slot, within)), wp.data.eq(desc),
                         wp.en.eq(word_take & current & (is_rx == side)),
                         cwp.addr.eq(Cat(ch_slot, within)), cwp.data.len.eq(r_len), cwp.data.err.eq(r_err),
                         cwp.data.bytes.eq(r_bytes),
                         cwp.en.eq(word_take & current & (is_rx == side) & r_end)]
        ch_push = Signal()
        with m.If(word_take & current):
            m.d.comb += [w_en.eq(1), w_q.eq(r_q), ch_push.eq(r_end), self.prot.eq(code == QueueStatus.PROTECTION),
                         self.zero.eq(code == QueueStatus.ZERO_LENGTH)]
            for q in range(Q):
                with m.If(r_q == q):
                    with m.If(r_end):
                        m.d.sync += [cur_len[q].eq(0), cur_err[q].eq(0), cur_bytes[q].eq(0)]
                    with m.Else():
                        m.d.sync += [cur_len[q].eq(r_len), cur_err[q].eq(r_err), cur_bytes[q].eq(r_bytes)]
        # A chain as long as the cache or the ring without an end can never complete.
        r_size = Array(size)[r_q]
        with m.If(word_take & current & ~r_end & ((r_len >= D) | (r_len >= r_size))):
            m.d.comb += [fault_en.eq(1), fault_q.eq(r_q), fault_code.eq(ERROR_CHAIN_TOO_LONG)]
        with m.If(end_of_group):
            m.d.comb += inflight.r_en.eq(1)
            with m.If(current & (resp.payload.status != 0)):
                m.d.comb += [fault_en.eq(1), fault_q.eq(r_q), fault_code.eq(resp.payload.status)]

        # ---------------------------------------------------------- engines' ports
        # An engine names the queue (``sel``) and descriptor (``idx``) it will
        # look at; the chain and the descriptor come out of block RAM on the
        # next cycle, for ``sel_q``. The look-up sees this cycle's pop of the
        # queue shown (its heads move on) and this cycle's writes (transparent).
        sel_qs = []
        for side, port in enumerate((self.tx, self.rx)):
            mem, chains, wp, cwp = rams[side]
            rd = mem.read_port(transparent_for=(wp,))
            crd = chains.read_port(transparent_for=(cwp,))
            base = side * N
            sel_q = Signal(range(max(N, 2)), name=f"sel_q_{'rx' if side else 'tx'}")
            sel_qs.append(sel_q)
            m.d.sync += sel_q.eq(port.sel)
            same = port.pop & (port.sel == sel_q)
            nxt_ch_head = (Array(ch_head[base:base + N])[port.sel] + same)[:DB]
            nxt_c_head = (Array(c_head[base:base + N])[port.sel] + Mux(same, crd.data.len, 0))[:DB]
            m.d.comb += [
                port.running.eq(Cat(*[running[base + i] for i in range(N)])),
                port.ready.eq(Cat(*[running[base + i] & (ch_count[base + i] != 0) for i in range(N)])),
                port.fetching.eq(Cat(*[running[base + i] & ((tail[base + i] != fetch[base + i])
                                                            | (c_infl[base + i] != 0)) for i in range(N)])),
                crd.addr.eq(Cat(nxt_ch_head, port.sel)),
                port.len.eq(crd.data.len),
                port.err.eq(crd.data.err),
                port.bytes.eq(crd.data.bytes),
                port.head.eq(Array(head[base:base + N])[sel_q]),
                rd.addr.eq(Cat((nxt_c_head + port.idx)[:DB], port.sel)),
                port.desc.eq(rd.data),
                pop_en[side].eq(port.pop), pop_q[side].eq(base + sel_q), pop_n[side].eq(crd.data.len),
                port.cq.eq(Array(l_cq[base:base + N])[sel_q]),
            ]
        # Completion slots: a queue may start a chain only when its completion
        # queue has room. The receive side sees the slot that the transmit side
        # claims in the same cycle.
        cl = self.claim
        CB = max(1, (cfg.num_cqs - 1).bit_length())
        room = Cat(cl.room, Const(0, (1 << CB) - cfg.num_cqs))
        room2 = Cat(cl.room2, Const(0, (1 << CB) - cfg.num_cqs))

        def has_room(cq, vec):
            return vec.bit_select(cq[:CB], 1) & (cq < cfg.num_cqs)
        # The receive side must not take the last slot of a completion queue
        # that the transmit side may claim in the same cycle; rather than wait
        # for the transmit side's decision (a long combinational path through
        # its DMA request), it asks for two slots whenever the queue the
        # transmit engine is shown is eligible and bound to the same one, and
        # waits (``full`` says when there is no slot at all: then it drops).
        tx_may = Signal()
        tx_cq = Signal(8)
        m.d.comb += [tx_cq.eq(Array(l_cq[:N])[sel_qs[0]]),
                     tx_may.eq((self.tx.ready & self.tx.room).bit_select(sel_qs[0], 1))]
        m.d.comb += [
            self.tx.room.eq(Cat(*[has_room(l_cq[i], room) for i in range(N)])),
            self.rx.room.eq(Cat(*[Mux(tx_may & (tx_cq == l_cq[N + i]), has_room(l_cq[N + i], room2),
                                      has_room(l_cq[N + i], room)) for i in range(N)])),
            self.rx.full.eq(Cat(*[~has_room(l_cq[N + i], room) for i in range(N)])),
            self.tx.full.eq(Cat(*[~has_room(l_cq[i], room) for i in range(N)])),
            cl.tx.en.eq(self.tx.claim), cl.tx.cq.eq(self.tx.cq),
            cl.rx.en.eq(self.rx.claim), cl.rx.cq.eq(self.rx.cq),
        ]
        m.d.comb += self.fault.eq(fault_en)

        # ------------------------------------------------------- state updates
        # Incarnations start one a cycle, with the control word of the table.
        startable = Signal(Q)
        m.d.comb += startable.eq(Cat(*[enabled[q] & ~on[q] & quiet[q] for q in range(Q)]))
        s_q = lowest_set(m, startable, "queue_start")
        s_ctrl = Signal(32)
        for side in range(2):
            m.d.comb += self._ctrl_rd[side].addr.eq(s_q[:QB - 1])
        m.d.comb += s_ctrl.eq(Mux(s_q[QB - 1], self._ctrl_rd[1].data, self._ctrl_rd[0].data))
        s_log = get_field(s_ctrl, ctrl_reg, "LOG_SIZE")
        s_cq = get_field(s_ctrl, ctrl_reg, "CQ")
        s_pd = get_field(s_ctrl, ctrl_reg, "PD")
        for q in range(Q):
            side, i = (self.rx, q - N) if q >= N else (self.tx, q)
            held = side.hold & (sel_qs[q >= N] == i)
            m.d.comb += quiet[q].eq((outst[q] == 0) & ~held)
            start = startable[q] & (s_q == q)
            # Outstanding: fetch groups issued, chains popped; less groups ended
            # and completions retired.
            ups = [f_en & (f_q == q), pop_en[0] & (pop_q[0] == q), pop_en[1] & (pop_q[1] == q)]
            downs = [end_of_group & (r_q == q)] + [r.en & (r.q == q) for r in self.retire]
            m.d.sync += outst[q].eq(outst[q] + sum(ups) - sum(downs))
            with m.If(on[q] & ~enabled[q]):
                m.d.sync += on[q].eq(0)
            inc = Mux(w_en & (w_q == q), 1, 0)
            dec = Mux(pop_en[0] & (pop_q[0] == q), pop_n[0], 0) + Mux(pop_en[1] & (pop_q[1] == q), pop_n[1], 0)
            fetched = Mux(f_en & (f_q == q), f_n, 0)
            ch_in = ch_push & (w_q == q)
            ch_out = (pop_en[0] & (pop_q[0] == q)) | (pop_en[1] & (pop_q[1] == q))
            with m.If(start):
                # A new incarnation starts empty, with the configuration of now.
                m.d.sync += [tail[q].eq(0), fetch[q].eq(0), head[q].eq(0), c_head[q].eq(0), c_count[q].eq(0),
                             c_infl[q].eq(0), error[q].eq(0), gen[q].eq(gen[q] + 1), cur_len[q].eq(0),
                             cur_err[q].eq(0), cur_bytes[q].eq(0), ch_head[q].eq(0), ch_count[q].eq(0),
                             on[q].eq(1), l_log[q].eq(s_log), l_cq[q].eq(s_cq), l_pd[q].eq(s_pd)]
            with m.Else():
                m.d.sync += [
                    c_count[q].eq(c_count[q] + inc - dec),
                    c_head[q].eq(c_head[q] + dec),
                    head[q].eq(head[q] + dec),
                    fetch[q].eq(fetch[q] + fetched),
                    c_infl[q].eq(c_infl[q] + fetched - inc),
                    ch_count[q].eq(ch_count[q] + ch_in - ch_out),
                    ch_head[q].eq(ch_head[q] + ch_out),
                ]
                with m.If(fault_en & (fault_q == q) & (error[q] == 0)):
                    m.d.sync += error[q].eq(fault_code)
        return m
