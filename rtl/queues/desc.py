"""Descriptor rings: doorbells, descriptor fetch and the per-queue cache.

Queues 0 .. N-1 are the transmit queues, N .. 2N-1 the receive queues. A doorbell
sets a queue's tail. The fetcher reads, by DMA, a quarter of ``desc_cache`` descriptors
at a time from queues whose tail is ahead of what was fetched and whose cache
has room for them (or for all that is pending), into a cache of
``desc_cache`` slots per queue in block RAM (slot = ring index mod the cache
size); it checks each against the protection table on the way in. The transmit
and receive engines each see, per queue, whether a complete chain
(descriptors up to one without MORE) is cached; they name the queue and
descriptor to look at a cycle ahead (the cache is read synchronously), and pop
the chain when done. A chain's length, first error, byte count and ring index
are recorded, when its last descriptor arrives, at its first slot (also block
RAM), so finding one costs no search.

State lives in memories, each written by one unit, read by the others:

==========  ==============================================  ==================
memory      per queue                                       written by
==========  ==============================================  ==================
``cfg``     generation, ring size, CQ, protection domain    the start unit
``tail``    producer index of the last doorbell taken       the doorbell unit
``fetch``   ring index up to which descriptors were fetched the fetcher
``acc``     the chain being cached (length, error, bytes,   the arrival path
            first index), chains completed, fault code
``head``    ring index up to which the engine popped, with  the engine (one
            the generation it was written in                 memory a side)
==========  ==============================================  ==================

The engines' cache read pointers (the slot of the head chain, the chains
popped) are a memory a side too, written by the engine's pops and read without
a clock (distributed RAM) for the queue an engine names. Flip-flops hold only
what a scheduler must see for every queue at once (one bit each: running, has
a chain, has descriptors to fetch, cache too full to fetch, parked on a full
completion queue, draining). A fetch is picked round robin among the queues
that need one (its pick registered), then decided from the memories a cycle
later.

Incarnations. Setting ENABLE starts an incarnation only once nothing of the
previous one is in flight: no descriptor fetch, no chain held by an engine,
no completion not yet written or dropped. The start unit waits until neither
engine holds the queue, then until every fetch issued and every chain popped
up to that moment (by anyone: global counts, so no per-queue count is kept)
has ended and been retired; then it has the doorbell unit, the fetcher, the
arrival path and the queue's engine (its cache pointers) clear the queue's
entries, and writes the configuration with a new generation (different from
the one the engine's head entry carries, so that entry reads as 0 until the
engine writes it). The incarnation takes its
ring size, completion queue and protection domain from CTRL when it starts and
keeps them, so whatever it started is completed where it began. A fetch is
tagged with the queue's generation and is used only while the queue is still
in the incarnation that issued it.

Doorbells: a producer index is taken only if it lies between what the NIC has
already fetched and the head plus the ring size; anything else is ignored and
counted. A chain is started by an engine only when its completion queue has a
slot for its completion (``room`` of the queue shown; the engine ``claim``s
it), so a completion queue that its owner does not drain holds only the queues
bound to it: the transmit engine parks (``block``) a queue whose completion
queue is full, and a scanner, one queue a cycle, lets it back once the
completion queue has room.

A queue stops in error (its ERROR register says why) when a descriptor fetch
fails or a chain cannot end within the ring or the cache; re-enabling the queue
restarts it with both indices at 0.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect, flipped

from ..csr import get_field
from ..dma.layouts import read_data_layout
from ..dma.mux import DmaReadClient
from ..lib.stream import StreamFifo
from ..lib.arbiter import round_robin
from ..lib.flags import FlagBits, passed
from ..lib.peek import PeekFifo
from ..lib.ram import state_memory, sync_read
from .common import ERROR_CHAIN_TOO_LONG, protection_ok
from .layouts import DESC_BYTES, Descriptor, DescFlags, QueueStatus

__all__ = ["DescQueues", "ChainPort", "CqClaimSignature", "RetireSignature", "RETIRE_PORTS", "INFLIGHT"]

#: Completions the completion writer retires per cycle at most.
RETIRE_PORTS = 3
#: Descriptor fetches in flight at most.
INFLIGHT = 8


class ChainPort(wiring.Signature):
    """An engine's view of one side's queues (engine side is ``In``).

    running  Out(N): queue is enabled and not in error
    ready    Out(N): queue has a complete chain cached (and is running; on the
             transmit side, and is not parked on a full completion queue)
    sel, idx In: the queue, and the descriptor of its head chain, to look at
             next cycle (the chains and descriptors are in block RAM)
    len      Out: descriptors in the head chain of the queue looked at
             (``sel`` of the previous cycle, "the shown queue");
             err: its QueueStatus (first bad descriptor)
    bytes    Out(16): its total buffer length (saturating at 0xFFFF)
    desc     Out(Descriptor): its descriptor ``idx`` (of the previous cycle)
    head     Out(16): ring index of its first descriptor
    cq       Out(8): the shown queue's completion queue (of its incarnation)
    fetching Out(1): descriptors posted to the shown queue are still on their way in
    room     Out(1): the shown queue may claim a slot of its completion queue this cycle
    full     Out(1): the shown queue's completion queue has no free slot at all
    claim    In(1): the engine starts the shown queue's chain: its completion slot is taken
    hold     In(1): the engine is inside a chain of the shown queue
    pop      In(1): the shown queue's chain is done; a look-up in the same
             cycle already sees the next chain
    block    In(1): the shown queue has no completion slot: leave it out of
             ``ready`` until its completion queue has room
    """

    def __init__(self, n, d):
        super().__init__({
            "running": Out(n), "ready": Out(n), "sel": In(range(max(n, 2))),
            "len": Out(range(d + 1)), "err": Out(4), "bytes": Out(16),
            "head": Out(16), "cq": Out(8), "idx": In(range(max(d, 2))),
            "desc": Out(Descriptor), "fetching": Out(1), "room": Out(1), "full": Out(1),
            "claim": In(1), "hold": In(1), "pop": In(1), "block": In(1),
        })


class CqClaimSignature(wiring.Signature):
    """Completion slots, queue side (``Out``). Every cycle the queue side names
    three completion queues: ``tx.cq`` and ``rx.cq`` (of the queues the engines
    are shown) and ``scan`` (of the parked transmit queue its scanner visits);
    ``room`` says, for each in that order, whether it runs and has a free slot,
    ``room2`` whether ``rx.cq`` has two. ``tx.en``/``rx.en`` claim a slot of
    ``tx.cq``/``rx.cq``."""

    def __init__(self, num_cqs):
        claim = wiring.Signature({"en": Out(1), "cq": Out(8)})
        super().__init__({"room": In(3), "room2": In(1), "tx": Out(claim), "rx": Out(claim), "scan": Out(8)})


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
        # Ring bases are read when a fetch is decided, the control word when an
        # incarnation starts.
        self._base_rd = [tables[k].read_port("BASE") for k in ("TXQ", "RXQ")]
        # CTRL is read a cycle after the start unit names the queue, which it
        # does cycles before the queue starts (block RAM).
        self._ctrl_rd = [tables[k].read_port("CTRL") for k in ("TXQ", "RXQ")]
        self._enabled = [tables[k].flag("CTRL", "ENABLE") for k in ("TXQ", "RXQ")]
        for k in ("TXQ", "RXQ"):
            tables[k].late("STATE")
            tables[k].late("ERROR")
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
        NB = QB - 1
        DB = (D - 1).bit_length()
        W = cfg.data_width
        tabs = self._tables
        t_q = [tabs["TXQ"], tabs["RXQ"]]
        ctrl_reg = t_q[0].block.reg("CTRL")
        ports = (self.tx, self.rx)

        def side_of(q):
            return q[NB]

        def within(q):
            return q[:NB]

        # ------------------------------------------------------------ memories
        cfg_l = data.StructLayout({"gen": 8, "log": 4, "cq": 8, "pd": 4})
        acc_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "first": 16, "ch_wr": DB + 1, "code": 4})
        head_l = data.StructLayout({"gen": 8, "head": 16})
        info_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "index": 16})
        # The configuration is written only as an incarnation starts, a cycle
        # before the queue runs: no reader needs the value of the cycle it is
        # written, so it is read without bypass logic (distributed RAM in the
        # default build, where its registered reads start the engines'
        # completion-slot look-ups and the fetcher's decisions; block RAM for
        # hundreds of queues).
        m.submodules.cfg_mem = cfg_mem = state_memory(shape=cfg_l, depth=Q)
        m.submodules.tail_mem = tail_mem = Memory(shape=16, depth=Q, init=[])
        m.submodules.fetch_mem = fetch_mem = Memory(shape=16, depth=Q, init=[])
        # The arrival path's entry in three memories, for their readers: the
        # chain being cached (the arrival path only), the chains completed
        # (also the engines), the fault code (also the register window).
        part_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "first": 16})
        m.submodules.acc_mem = acc_mem = Memory(shape=part_l, depth=Q, init=[])
        m.submodules.chw_mem = chw_mem = Memory(shape=DB + 1, depth=Q, init=[])
        m.submodules.code_mem = code_mem = Memory(shape=4, depth=Q, init=[])
        head_mem, cache, info = [], [], []
        for side, sn in enumerate(("tx", "rx")):
            # The engine's head entry: its readers take it a cycle late (the
            # fetcher and the doorbell check only see less room, never more),
            # so it is read without bypass logic; a pop in the cycle of their
            # read comes from a register (``head_after_read``).
            head_mem.append(state_memory(shape=head_l, depth=N))
            cache.append(Memory(shape=Descriptor, depth=N * D, init=[]))
            info.append(Memory(shape=info_l, depth=N * D, init=[]))
            m.submodules[f"head_{sn}"] = head_mem[side]
            m.submodules[f"cache_{sn}"] = cache[side]
            m.submodules[f"chains_{sn}"] = info[side]
        cfg_wp = cfg_mem.write_port()
        tail_wp = tail_mem.write_port()
        fetch_wp = fetch_mem.write_port()
        acc_wp = acc_mem.write_port()
        chw_wp = chw_mem.write_port()
        code_wp = code_mem.write_port()
        head_wp = [mem.write_port() for mem in head_mem]
        cache_wp = [mem.write_port() for mem in cache]
        info_wp = [mem.write_port() for mem in info]

        def size_of(log):
            return (Const(1, 17) << log)[:17]

        def head_of(entry, gen):
            """A head entry written in another incarnation reads as 0."""
            return Mux(entry.gen == gen, entry.head, 0)

        # ------------------------------------------------------ per-queue flags
        on = FlagBits("q_on", Q)                  # an incarnation is running
        err = FlagBits("q_err", Q)                # ... and stopped in error
        chains = FlagBits("q_chains", Q)          # a complete chain is cached
        pend = FlagBits("q_pend", Q)              # the tail may be ahead of what was fetched
        starved = FlagBits("q_starved", Q)        # ... but the cache has too little room
        draining = FlagBits("q_draining", Q)      # stopped; its work may still be in flight
        blocked = FlagBits("tx_blocked", N)       # transmit queue parked on a full completion queue
        enabled = Signal(Q)
        m.d.comb += enabled.eq(Cat(self._enabled[0], self._enabled[1]))
        running = Signal(Q)
        m.d.comb += running.eq(on.value & ~err.value)
        # An incarnation stops when ENABLE is cleared; it drains before the next.
        stop = on.value & ~enabled
        on.clear_mask(stop)
        draining.set_mask(stop)
        # The engines' cache read pointers, a memory a side: slot of the head
        # chain, chains popped. Written by pops and, before an incarnation
        # starts, cleared like the other entries (on a cycle with no pop).
        ptr_l = data.StructLayout({"c_head": DB, "ch_rd": DB + 1})
        ptr_mem = [Memory(shape=ptr_l, depth=N, init=[]) for _ in range(2)]
        m.submodules.ptr_tx, m.submodules.ptr_rx = ptr_mem
        ptr_wp = [mem.write_port() for mem in ptr_mem]

        # Global counts for the drain: fetches issued and ended; chains popped
        # and retired, per side.
        f_issued, f_ended = Signal(16), Signal(16)
        pops = [Signal(16, name="pops_tx"), Signal(16, name="pops_rx")]
        rets = [Signal(16, name="rets_tx"), Signal(16, name="rets_rx")]
        for side in range(2):
            n_ret = sum((r.en & (side_of(r.q) == side)) for r in self.retire)
            m.d.sync += rets[side].eq(rets[side] + n_ret)

        # Clearing a queue's entries when its incarnation starts (the start
        # unit asks; each memory's own writer does it on a free cycle).
        clr_q = Signal(QB)
        clr_req = Signal(4)                       # doorbell unit, fetcher, arrival path, the queue's engine
        clr_done = Signal(4)

        # ------------------------------------------------------------ doorbells
        # One doorbell a cycle at most (they come over the register bus); it is
        # checked a cycle later against the queue's fetch and head entries.
        dbs = [tabs["TXQ_DB"].wo_db, tabs["RXQ_DB"].wo_db]
        a_q = Signal(QB)
        a_tail = Signal(16)
        m.d.comb += [a_q.eq(Mux(dbs[1].stb, Cat(dbs[1].entry[:NB], Const(1, 1)), Cat(dbs[0].entry[:NB], Const(0, 1)))),
                     a_tail.eq(Mux(dbs[1].stb, dbs[1].data[:16], dbs[0].data[:16]))]
        d_valid = Signal()
        d_q = Signal(QB)
        d_tail = Signal(16)
        m.d.sync += [d_valid.eq(dbs[0].stb | dbs[1].stb), d_q.eq(a_q), d_tail.eq(a_tail)]
        d_cfg = sync_read(m, cfg_mem, a_q, name="d_cfg")
        d_fetch_rd = fetch_mem.read_port(transparent_for=(fetch_wp,))
        d_head_rd = [sync_read(m, mem, within(a_q), name=f"d_head_{k}") for k, mem in enumerate(head_mem)]
        m.d.comb += d_fetch_rd.addr.eq(a_q)

        # Values written this cycle by their owners are seen at once (the reads
        # above were issued a cycle ago).
        f_commit = Signal()
        f_commit_q = Signal(QB)
        f_new = Signal(16)
        pop_wr = [Signal(name="pop_wr_tx"), Signal(name="pop_wr_rx")]
        pop_wr_q = [Signal(NB, name="pop_q_tx"), Signal(NB, name="pop_q_rx")]
        pop_wr_head = [Signal(16, name="pop_head_tx"), Signal(16, name="pop_head_rx")]
        d_fetch = Mux(f_commit & (f_commit_q == d_q), f_new, d_fetch_rd.data)

        def pop_of(q):
            """An engine pops queue ``q`` this cycle."""
            return ((pop_wr[0] & ~side_of(q) & (pop_wr_q[0] == within(q)))
                    | (pop_wr[1] & side_of(q) & (pop_wr_q[1] == within(q))))

        def head_after_read(q, entries, gen, name):
            """The head of queue ``q`` from its entry read last cycle: a pop
            of ``q`` in the cycle of the read (whose write the block RAM
            cannot return) is taken from a register instead. A pop in this
            cycle is not seen: the head is a pop behind, which only ever
            shows less room (no host can know of a pop that early)."""
            now = Signal(name=f"{name}_pop_now")
            hit = Signal(name=f"{name}_pop_hit")
            popped = Signal(16, name=f"{name}_pop_head")
            m.d.comb += now.eq(pop_of(q))
            m.d.sync += [hit.eq(now), popped.eq(Mux(side_of(q), pop_wr_head[1], pop_wr_head[0]))]
            read_side = Signal(name=f"{name}_side")
            m.d.sync += read_side.eq(side_of(q))
            out = Signal(16, name=f"{name}_head")
            m.d.comb += out.eq(Mux(hit, popped, head_of(head_l(Mux(read_side, entries[1], entries[0])), gen)))
            return out

        d_head = head_after_read(a_q, d_head_rd, d_cfg.gen, "d")
        ahead = (d_tail - d_head)[:16]
        fetched = (d_fetch - d_head)[:16]
        # Between what was fetched and a full ring ahead of the head.
        d_ok = on.value.bit_select(d_q, 1) & (ahead <= size_of(d_cfg.log)) & (ahead >= fetched)
        m.d.comb += self.db_ignored.eq(d_valid & ~d_ok)
        with m.If(d_valid & d_ok):
            m.d.comb += [tail_wp.addr.eq(d_q), tail_wp.data.eq(d_tail), tail_wp.en.eq(1)]
        with m.Elif(clr_req[0]):
            m.d.comb += [tail_wp.addr.eq(clr_q), tail_wp.data.eq(0), tail_wp.en.eq(1), clr_done[0].eq(1)]
        pend.set(d_valid & d_ok & (ahead != fetched), d_q)

        # ---------------------------------------------------------------- fetch
        # Round robin among the queues with descriptors to fetch and cache room
        # for them; the pick is registered, the queue's entries are read, and
        # the next cycle decides.
        inflight = PeekFifo(m, data.StructLayout({"q": QB, "gen": 8, "n": DB + 1, "first": 16}), INFLIGHT,
                            "inflight")
        cand = Signal(Q)
        m.d.comb += cand.eq(pend.value & ~starved.value & running)
        last_f = Signal(QB)
        rr = round_robin(m, Q, cand, last_f)
        p_valid = Signal()
        p_q = Signal(QB)
        m.d.sync += [p_valid.eq(cand.any()), p_q.eq(rr)]
        with m.If(cand.any()):
            m.d.sync += last_f.eq(rr)
        f_cfg = sync_read(m, cfg_mem, p_q, name="f_cfg")
        f_tail_rd = tail_mem.read_port(transparent_for=(tail_wp,))
        f_fetch_rd = fetch_mem.read_port(transparent_for=(fetch_wp,))
        f_head_rd = [sync_read(m, mem, within(p_q), name=f"f_head_{k}") for k, mem in enumerate(head_mem)]
        m.d.comb += [f_tail_rd.addr.eq(p_q), f_fetch_rd.addr.eq(p_q)]
        b_valid = Signal()
        b_q = Signal(QB)
        m.d.sync += [b_valid.eq(p_valid), b_q.eq(p_q)]
        f_fetch = f_fetch_rd.data
        f_head = head_after_read(p_q, f_head_rd, f_cfg.gen, "f")
        f_size = size_of(f_cfg.log)
        pending = Signal(17)
        to_end = Signal(17)
        free = Signal(17)
        m.d.comb += [pending.eq((f_tail_rd.data - f_fetch)[:16]),
                     to_end.eq(f_size - (f_fetch & (f_size - 1))),
                     free.eq(D - (f_fetch - f_head)[:16])]
        # A queue is fetched for once a quarter of its cache is free (or all
        # it has pending fits), a quarter at a time: descriptors come several
        # to a read, not one by one, and while some are being used the next
        # ones are on their way (behind a long read latency, the cache is
        # what bounds a queue's small frames).
        quarter = max(1, D // 4)
        want = Mux(pending < quarter, pending, quarter)
        # With no complete chain cached no pop will free more room: what
        # fits is fetched (the chain ends, or reaches the cache size and
        # faults), rather than waiting for room that never comes.
        some = Mux(want < free, want, free)
        lim = Mux(pending < to_end, pending, to_end)
        n_fetch = Signal(DB + 1)
        m.d.comb += n_fetch.eq(Mux(lim < some, lim, some))
        no_chain = ~chains.value.bit_select(b_q, 1)
        fits = (free >= want) | (no_chain & (free != 0))
        # The request goes out from a register the next cycle, with the ring
        # base read from the table alongside the entries.
        req = self.dma.req
        r_valid = Signal()
        r_rx = Signal()
        r_off = Signal(20)
        r_len = Signal(DB + 5)
        r_free = ~r_valid | req.ready
        live = b_valid & running.bit_select(b_q, 1) & ~clr_req[1]
        m.d.comb += [f_commit_q.eq(b_q), f_new.eq(f_fetch + n_fetch),
                     f_commit.eq(live & (pending != 0) & fits & inflight.w_rdy & r_free)]
        m.d.comb += [req.valid.eq(r_valid),
                     req.payload.addr.eq(Mux(r_rx, self._base_rd[1].data, self._base_rd[0].data) + r_off),
                     req.payload.len.eq(r_len)]
        # The ring base is read as the fetch is decided, and held while the
        # request waits for the multiplexer (no decision is taken meanwhile).
        for side in range(2):
            m.d.comb += [self._base_rd[side].addr.eq(within(b_q)), self._base_rd[side].en.eq(f_commit)]
        with m.If(req.ready):
            m.d.sync += r_valid.eq(0)
        with m.If(f_commit):
            m.d.comb += [fetch_wp.addr.eq(b_q), fetch_wp.data.eq(f_new), fetch_wp.en.eq(1),
                         inflight.w_en.eq(1), inflight.w_data.q.eq(b_q), inflight.w_data.gen.eq(f_cfg.gen),
                         inflight.w_data.n.eq(n_fetch), inflight.w_data.first.eq(f_fetch)]
            m.d.sync += [r_valid.eq(1), r_rx.eq(side_of(b_q)), r_off.eq((f_fetch & (f_size - 1)) << 4),
                         r_len.eq(n_fetch << 4), f_issued.eq(f_issued + 1)]
        with m.Elif(clr_req[1]):
            m.d.comb += [fetch_wp.addr.eq(clr_q), fetch_wp.data.eq(0), fetch_wp.en.eq(1), clr_done[1].eq(1)]
        pend.clear(f_commit & (pending == n_fetch), b_q)
        pend.clear(live & (pending == 0), b_q)
        # Not starved by a head a pop behind: a pop of the queue in this very
        # cycle (whose clear the set would override) may have freed the room,
        # and if it took the last cached chain no later pop would clear it.
        starved.set(live & (pending != 0) & ~fits & ~pop_of(b_q), b_q)

        # ------------------------------------------------------------- arrival
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
        word = Signal(8 * DESC_BYTES)
        word_ok = Signal()            # a whole descriptor is in ``word`` this cycle
        stall = Signal()              # ... but it waits: its queue's entries are not read yet
        if W <= 128:
            per = 128 // W            # beats per descriptor
            acc_bits = Signal(128)
            got = Signal(range(per + 1))
            if per == 1:
                m.d.comb += [word.eq(resp.payload.data), word_ok.eq(resp.valid & (resp.payload.nbytes != 0)),
                             resp.ready.eq(~stall)]
            else:
                m.d.comb += [word.eq(Cat(acc_bits[:128 - W], resp.payload.data)),
                             word_ok.eq(resp.valid & (got == per - 1) & (resp.payload.nbytes != 0)),
                             resp.ready.eq(~stall)]
                with m.If(resp.valid & ~stall):
                    with m.If((got == per - 1) | resp.payload.last):
                        m.d.sync += got.eq(0)
                    with m.Else():
                        m.d.sync += [acc_bits.word_select(got, W).eq(resp.payload.data), got.eq(got + 1)]
            end_of_group = resp.valid & resp.payload.last & ~stall
        else:
            per = W // 128            # descriptors per beat
            sub = Signal(range(per))
            in_beat = resp.payload.nbytes >> 4
            m.d.comb += [word.eq(resp.payload.data.word_select(sub, 128)),
                         word_ok.eq(resp.valid & (sub < in_beat))]
            last_sub = (sub == per - 1) | (sub + 1 >= in_beat)
            with m.If(resp.valid & ~stall):
                with m.If(last_sub):
                    m.d.comb += resp.ready.eq(1)
                    m.d.sync += sub.eq(0)
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
            end_of_group = resp.valid & resp.ready & resp.payload.last
        word_take = word_ok & ~stall

        # The group at the head of the in-flight records: its queue's
        # configuration and chain in progress are read a cycle ahead (the
        # next group's as the current one ends), and a descriptor waits while
        # what was read is for another queue.
        g = inflight.head
        a_acc_rd = acc_mem.read_port(transparent_for=(acc_wp,))
        a_chw_rd = chw_mem.read_port(transparent_for=(chw_wp,))
        a_code_rd = code_mem.read_port(transparent_for=(code_wp,))
        a_addr = Signal(QB)
        a_read_q = Signal(QB)
        m.d.comb += a_addr.eq(Mux(end_of_group, inflight.next.q, g.q))
        m.d.comb += [a_acc_rd.addr.eq(a_addr), a_chw_rd.addr.eq(a_addr), a_code_rd.addr.eq(a_addr)]
        a_cfg = sync_read(m, cfg_mem, a_addr, name="a_cfg")
        m.d.sync += a_read_q.eq(a_addr)
        m.d.comb += stall.eq((a_read_q != g.q) | clr_req[2])
        r_q = g.q
        acc = acc_l(Cat(a_acc_rd.data, a_chw_rd.data, a_code_rd.data))
        k = Signal(DB + 1)            # descriptor of the group
        with m.If(end_of_group):
            m.d.sync += k.eq(0)
        with m.Elif(word_take):
            m.d.sync += k.eq(k + 1)
        current = (g.gen == a_cfg.gen) & on.value.bit_select(r_q, 1)
        desc = Signal(Descriptor)
        m.d.comb += desc.eq(word)
        is_rx = side_of(r_q)
        ok = protection_ok(m, self._mrs, a_cfg.pd, desc.addr, desc.len, write=is_rx)
        code = Signal(4)
        m.d.comb += code.eq(Mux(desc.len == 0, QueueStatus.ZERO_LENGTH,
                                Mux(ok, QueueStatus.OK, QueueStatus.PROTECTION)))
        index = Signal(16)
        m.d.comb += index.eq(g.first + k)
        r_len = acc.len + 1
        r_err = Mux(acc.err != 0, acc.err, code)
        r_end = (desc.flags & DescFlags.MORE) == 0
        r_sum = Signal(17)
        m.d.comb += r_sum.eq(acc.bytes + desc.len[:16])
        r_bytes = Mux((desc.len[16:] != 0) | r_sum[16], 0xFFFF, r_sum[:16])
        r_first = Mux(acc.len == 0, index, acc.first)
        nxt = Signal(acc_l)
        m.d.comb += nxt.eq(acc)
        taking = word_take & current
        for side in range(2):
            m.d.comb += [cache_wp[side].addr.eq(Cat(index[:DB], within(r_q))), cache_wp[side].data.eq(desc),
                         cache_wp[side].en.eq(taking & (is_rx == side)),
                         info_wp[side].addr.eq(Cat(r_first[:DB], within(r_q))),
                         info_wp[side].data.len.eq(r_len), info_wp[side].data.err.eq(r_err),
                         info_wp[side].data.bytes.eq(r_bytes), info_wp[side].data.index.eq(r_first),
                         info_wp[side].en.eq(taking & (is_rx == side) & r_end)]
        with m.If(taking):
            m.d.comb += [self.prot.eq(code == QueueStatus.PROTECTION), self.zero.eq(code == QueueStatus.ZERO_LENGTH)]
            with m.If(r_end):
                m.d.comb += [nxt.len.eq(0), nxt.err.eq(0), nxt.bytes.eq(0), nxt.first.eq(0),
                             nxt.ch_wr.eq(acc.ch_wr + 1)]
            with m.Else():
                m.d.comb += [nxt.len.eq(r_len), nxt.err.eq(r_err), nxt.bytes.eq(r_bytes), nxt.first.eq(r_first)]
        chains.set(taking & r_end, r_q)
        # A chain as long as the cache or the ring without an end can never
        # complete; a failed fetch stops the queue too.
        fault_code = Signal(4)
        too_long = taking & ~r_end & ((r_len >= D) | (r_len >= size_of(a_cfg.log)))
        failed = end_of_group & current & (resp.payload.status != 0)
        m.d.comb += fault_code.eq(Mux(too_long, ERROR_CHAIN_TOO_LONG, resp.payload.status))
        fault = (too_long | failed) & ~err.value.bit_select(r_q, 1)
        with m.If(fault & (acc.code == 0)):
            m.d.comb += nxt.code.eq(fault_code)
        err.set(fault, r_q)
        m.d.comb += self.fault.eq(fault)
        # The entry written (the arrival path's, or a clear for a new
        # incarnation) goes to its three memories at once.
        acc_w = Signal(acc_l)
        acc_w_q = Signal(QB)
        acc_w_en = Signal()
        with m.If(taking | failed):
            m.d.comb += [acc_w_q.eq(r_q), acc_w.eq(nxt), acc_w_en.eq(1)]
        with m.Elif(clr_req[2]):
            m.d.comb += [acc_w_q.eq(clr_q), acc_w_en.eq(1), clr_done[2].eq(1)]
        for wp, value in ((acc_wp, acc_w.as_value()[:part_l.size]), (chw_wp, acc_w.ch_wr), (code_wp, acc_w.code)):
            m.d.comb += [wp.addr.eq(acc_w_q), wp.data.eq(value), wp.en.eq(acc_w_en)]
        with m.If(end_of_group):
            m.d.comb += inflight.r_en.eq(1)
            m.d.sync += f_ended.eq(f_ended + 1)

        # ---------------------------------------------------------- engines' ports
        # An engine names the queue (``sel``) and descriptor (``idx``) it will
        # look at; the chain and the descriptor come out of block RAM on the
        # next cycle, for ``sel_q``. The look-up sees this cycle's pop of the
        # queue shown (its heads move on) and this cycle's writes (transparent).
        sel_qs = []
        shown_cfg = []
        for side, port in enumerate(ports):
            sn = "rx" if side else "tx"
            sel_q = Signal(range(max(N, 2)), name=f"sel_q_{sn}")
            sel_qs.append(sel_q)
            m.d.sync += sel_q.eq(port.sel)
            rd = cache[side].read_port(transparent_for=(cache_wp[side],))
            ird = info[side].read_port(transparent_for=(info_wp[side],))
            e_cfg = sync_read(m, cfg_mem, Cat(port.sel, Const(side, 1)), name=f"e_cfg_{sn}")
            e_chw_rd = chw_mem.read_port(transparent_for=(chw_wp,))
            shown_cfg.append(e_cfg)
            same = port.pop & (port.sel == sel_q)
            ch = ird.data
            # The named queue's pointers (before this cycle's pop, which the
            # look-up adds itself), and the shown queue's (for the pop).
            ptr_sel = ptr_mem[side].read_port(domain="comb")
            ptr_shown = ptr_mem[side].read_port(domain="comb")
            m.d.comb += [ptr_sel.addr.eq(port.sel), ptr_shown.addr.eq(sel_q)]
            nxt_c_head = (ptr_sel.data.c_head + Mux(same, ch.len, 0))[:DB]
            sq = Cat(sel_q, Const(side, 1))
            m.d.comb += [
                e_chw_rd.addr.eq(Cat(port.sel, Const(side, 1))),
                ird.addr.eq(Cat(nxt_c_head, port.sel)),
                rd.addr.eq(Cat((nxt_c_head + port.idx)[:DB], port.sel)),
                port.running.eq(running[side * N:side * N + N]),
                port.len.eq(ch.len), port.err.eq(ch.err), port.bytes.eq(ch.bytes), port.head.eq(ch.index),
                port.desc.eq(rd.data), port.cq.eq(e_cfg.cq),
                port.fetching.eq(pend.value.bit_select(sq, 1) | inflight.has("q", sq)),
            ]
            ready = running[side * N:side * N + N] & chains.value[side * N:side * N + N]
            m.d.comb += port.ready.eq(ready & ~blocked.value if side == 0 else ready)
            # A pop: the head chain moves on; once the last cached chain is
            # popped, the queue has none (unless one completes this cycle).
            left = (e_chw_rd.data - ptr_shown.data.ch_rd - 1)[:DB + 1]
            wp = ptr_wp[side]
            with m.If(port.pop):
                m.d.comb += [wp.addr.eq(sel_q), wp.en.eq(1), wp.data.c_head.eq(ptr_shown.data.c_head + ch.len),
                             wp.data.ch_rd.eq(ptr_shown.data.ch_rd + 1)]
            with m.Elif(clr_req[3] & (side_of(clr_q) == side)):
                m.d.comb += [wp.addr.eq(within(clr_q)), wp.en.eq(1), wp.data.eq(0), clr_done[3].eq(1)]
            chains.clear(port.pop & (left == 0), sq)
            starved.clear(port.pop, sq)
            m.d.comb += [pop_wr[side].eq(port.pop), pop_wr_q[side].eq(sel_q),
                         pop_wr_head[side].eq(ch.index + ch.len),
                         head_wp[side].addr.eq(sel_q), head_wp[side].en.eq(port.pop),
                         head_wp[side].data.gen.eq(e_cfg.gen), head_wp[side].data.head.eq(ch.index + ch.len)]
            with m.If(port.pop):
                m.d.sync += pops[side].eq(pops[side] + 1)
        blocked.set(self.tx.block, sel_qs[0])

        # Completion slots: a queue may start a chain only when its completion
        # queue has room.
        cl = self.claim
        # The receive side must not take the last slot of a completion queue
        # that the transmit side may claim in the same cycle; rather than wait
        # for the transmit side's decision (a long combinational path through
        # its DMA request), it asks for two slots whenever the queue the
        # transmit engine is shown is eligible and bound to the same one, and
        # waits (``full`` says when there is no slot at all: then it drops).
        tx_cq, rx_cq = shown_cfg[0].cq, shown_cfg[1].cq
        tx_may = self.tx.ready.bit_select(sel_qs[0], 1)
        m.d.comb += [
            self.tx.room.eq(cl.room[0]),
            self.tx.full.eq(~cl.room[0]),
            self.rx.room.eq(Mux(tx_may & (tx_cq == rx_cq), cl.room2, cl.room[1])),
            self.rx.full.eq(~cl.room[1]),
            cl.tx.en.eq(self.tx.claim), cl.tx.cq.eq(tx_cq),
            cl.rx.en.eq(self.rx.claim), cl.rx.cq.eq(rx_cq),
        ]
        # Parked transmit queues are let back, one a cycle, once their
        # completion queue has room.
        s_i = Signal(range(max(N, 2)))
        s_q = Signal(range(max(N, 2)))
        m.d.sync += [s_i.eq(Mux(s_i == N - 1, 0, s_i + 1)), s_q.eq(s_i)]
        s_cfg = sync_read(m, cfg_mem, Cat(s_i, Const(0, 1)), name="s_cfg")
        m.d.comb += cl.scan.eq(s_cfg.cq)
        blocked.clear(cl.room[2], s_q)

        # Registers read through the tables' windows: the entry being read, a
        # cycle later.
        for side in range(2):
            t = t_q[side]
            r = Cat(t.r_entry[:NB], Const(side, 1))
            m_cfg = sync_read(m, cfg_mem, r, name=f"m_cfg_{side}")
            m_tail = tail_mem.read_port(transparent_for=(tail_wp,))
            m_code = code_mem.read_port(transparent_for=(code_wp,))
            m_head = sync_read(m, head_mem[side], t.r_entry[:NB], name=f"m_head_{side}")
            m.d.comb += [m_tail.addr.eq(r), m_code.addr.eq(r)]
            r_on, r_drain = Signal(name=f"r_on_{side}"), Signal(name=f"r_drain_{side}")
            m.d.sync += [r_on.eq(on.value.bit_select(r, 1)), r_drain.eq(draining.value.bit_select(r, 1))]
            m.d.comb += [t.ro_state.eq(Cat(head_of(m_head, m_cfg.gen), m_tail.data)),
                         t.ro_error.eq(Cat(m_code.data, Const(0, 4), r_on, r_drain))]

        # ------------------------------------------------------- start and drain
        # One queue at a time, round robin among those that drain or wait to
        # start: wait until no engine holds it, note how many fetches were
        # issued and chains popped by then, wait until as many have ended and
        # been retired; then (if ENABLE is set) clear its entries and start it.
        want_start = Signal(Q)
        m.d.comb += want_start.eq(draining.value | (enabled & ~on.value))
        last_s = Signal(QB)
        s_pick = round_robin(m, Q, want_start, last_s)
        u_q = Signal(QB)
        u_side = side_of(u_q)
        mark_f = Signal(16)
        mark_p = Signal(16)
        held = Signal()
        m.d.comb += held.eq(Mux(u_side, self.rx.hold & (sel_qs[1] == within(u_q)),
                                self.tx.hold & (sel_qs[0] == within(u_q))))
        u_cfg = sync_read(m, cfg_mem, u_q, name="u_cfg")
        u_head_rd = [sync_read(m, mem, within(u_q), name=f"u_head_{k}") for k, mem in enumerate(head_mem)]
        for side in range(2):
            m.d.comb += self._ctrl_rd[side].addr.eq(within(u_q))
        u_ctrl = Mux(u_side, self._ctrl_rd[1].data, self._ctrl_rd[0].data)
        pending_clr = Signal(4)
        m.d.comb += [clr_q.eq(u_q), clr_req.eq(pending_clr)]
        u_drained = Signal()          # the drain of u_q is over
        u_start = Signal()            # u_q starts its incarnation
        with m.FSM(name="queue_start"):
            with m.State("Idle"):
                with m.If(want_start.any()):
                    m.d.sync += [u_q.eq(s_pick), last_s.eq(s_pick)]
                    m.next = "Held"
            with m.State("Held"):
                with m.If(~held):
                    m.d.sync += [mark_f.eq(f_issued), mark_p.eq(Mux(u_side, pops[1], pops[0]))]
                    m.next = "Drain"
            with m.State("Drain"):
                with m.If(passed(f_ended, mark_f) & passed(Mux(u_side, rets[1], rets[0]), mark_p)):
                    with m.If(enabled.bit_select(u_q, 1) & ~on.value.bit_select(u_q, 1)):
                        m.d.sync += pending_clr.eq(0b1111)
                        m.next = "Clear"
                    with m.Else():
                        m.next = "Idle"
                    m.d.comb += u_drained.eq(1)
            with m.State("Clear"):
                m.d.sync += pending_clr.eq(pending_clr & ~clr_done)
                with m.If((pending_clr & ~clr_done) == 0):
                    m.next = "Start"
            with m.State("Start"):
                # A new incarnation starts empty, with the configuration of now,
                # and a generation its engine's head entry does not carry.
                old = u_cfg.gen
                h_gen = Mux(u_side, u_head_rd[1].gen, u_head_rd[0].gen)
                gen = Mux((old + 1)[:8] == h_gen, old + 2, old + 1)[:8]
                m.d.comb += [cfg_wp.addr.eq(u_q), cfg_wp.en.eq(1), cfg_wp.data.gen.eq(gen),
                             cfg_wp.data.log.eq(get_field(u_ctrl, ctrl_reg, "LOG_SIZE")),
                             cfg_wp.data.cq.eq(get_field(u_ctrl, ctrl_reg, "CQ")),
                             cfg_wp.data.pd.eq(get_field(u_ctrl, ctrl_reg, "PD"))]
                m.next = "Go"
            with m.State("Go"):
                # The queue runs from the cycle after its configuration was
                # written, so every read of it sees the new one.
                with m.If(enabled.bit_select(u_q, 1)):
                    m.d.comb += u_start.eq(1)
                m.next = "Idle"
        draining.clear(u_drained, u_q)
        on.set(u_start, u_q)
        for flags in (err, chains, pend, starved):
            flags.clear(u_start, u_q)
        blocked.clear(u_start & ~u_side, within(u_q))

        for flags in (on, err, chains, pend, starved, draining, blocked):
            flags.apply(m)
        return m
