"""Descriptor rings: doorbells, descriptor fetch and the per-queue cache.

Queues 0 .. N-1 are the transmit queues, N .. 2N-1 the receive queues. A doorbell
sets a queue's tail. The fetcher reads, by DMA, a quarter of ``desc_cache`` descriptors
at a time from queues whose tail is ahead of what was fetched and whose cache
has room for them (or for all that is pending), into a cache of
``desc_cache`` slots per queue in block RAM (slot = ring index mod the cache
size); it checks each against the protection table on the way in. The engines
name the queue and descriptor to look at a cycle ahead (the cache is read
synchronously) and are shown, for that queue, whether it runs and has a
complete chain cached (descriptors up to one without MORE), the chain's
length, first error, byte count and ring index (recorded at its first slot
when its last descriptor arrives, so finding one costs no search), and pop
the chain when done.

State lives in memories, each written by one unit, read by the others; no
per-queue state is kept in flip-flops, and no logic looks at every queue at
once:

==========  ==============================================  ==================
memory      per queue                                       written by
==========  ==============================================  ==================
``cfg``     generation, ring size, CQ, protection domain,   the start unit
            running, draining
``tail``    producer index of the last doorbell taken       the doorbell unit
``fetch``   ring index up to which descriptors were fetched the fetcher
``acc``     the chain being cached (length, error, bytes,   the arrival path
            first index), chains completed, fault code
``ptr``     slot of the head chain, chains popped           the engine (one
``head``    ring index up to which the engine popped, with  memory a side)
            the generation it was written in
``sched``   where a transmit queue is in its scheduling     the transmit
            (idle, queued, parked)                          scheduler
==========  ==============================================  ==================

A queue runs while its configuration says so and its fault code is 0; it has
a chain cached while the chains completed differ from those popped, and
descriptors to fetch while its tail differs from what was fetched.

Scheduling is by events, one queue a cycle, with a scanner behind them:

- The fetcher decides for one queue a cycle: those whose doorbell was just
  taken, those whose engine just popped a chain (room in the cache), and,
  every other cycle while such hints wait and every cycle otherwise, the
  next queue of a scanner that visits them all. Its entries are read in
  one cycle, worked out in the next and the fetch decided in the third; a
  queue being worked out is not read again. A queue it fetched for is
  decided again three cycles later, until it has nothing to fetch or no
  room, so that a queue with a backlog is fetched for a quarter of its
  cache at a time.
  Hints go into small FIFOs; one that finds its FIFO full is dropped, and the
  scanner finds the queue instead: nothing is lost, only later.
- The transmit queues are handed to the transmit engine from a FIFO of queue
  numbers (``work``) in which each queue is at most once: a queue enters it
  when a chain completes for it, when the engine gives it back (``release``)
  with a chain still cached, or when the scanner finds it parked with room in
  its completion queue again. The engine takes one chain of a queue per turn
  (more only while no other queue waits), so the queues with work share the
  engine round robin. A queue given back without room in its completion queue
  is parked, so that a completion queue that its owner does not drain holds
  only the queues bound to it. The scheduler keeps each queue's state in
  ``sched``, read and written by one pipeline.
- The receive engine needs no schedule: each frame names its queue.

Incarnations. Setting ENABLE starts an incarnation only once nothing of the
previous one is in flight: no descriptor fetch, no chain held by an engine,
no completion not yet written or dropped. The start unit visits the queues one
a cycle, comparing ENABLE with the configuration; it stops a queue whose
ENABLE was cleared (up to a cycle per queue later: the driver waits for the
drain anyway) and waits until neither engine holds it, then until every fetch
issued and every chain popped up to that moment (by anyone: global counts, so
no per-queue count is kept) has ended and been retired; then it has the
doorbell unit, the fetcher, the arrival path and the queue's engine (its
cache pointers) clear the queue's entries, and writes the configuration with
a new generation (the engine's head entry is cleared to it, at 0). The incarnation takes its
ring size, completion queue and protection domain from CTRL when it starts and
keeps them, so whatever it started is completed where it began. A fetch is
tagged with the queue's generation and is used only while the queue is still
in the incarnation that issued it. The configuration is read with a bypass
for the cycle it is written, so no reader ever sees half of an incarnation.

Doorbells: a producer index is taken only if it lies between what the NIC has
already fetched and the head plus the ring size; anything else is ignored and
counted. A chain is started by an engine only when its completion queue has a
slot for its completion (``room`` of the queue shown; the engine ``claim``s
it).

A queue stops in error (its ERROR register says why) when a descriptor fetch
fails or a chain cannot end within the ring or the cache; re-enabling the queue
restarts it with both indices at 0.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect, flipped

from ..csr import get_field
from ..dma.layouts import read_data_layout
from ..dma.mux import DmaReadClient
from ..lib.stream import StreamFifo
from ..lib.flags import passed
from ..lib.peek import PeekFifo
from ..lib.ram import WriteStamps, fresh_read, state_memory, sync_read
from .common import ERROR_CHAIN_TOO_LONG, protection_ok
from .layouts import DESC_BYTES, Descriptor, DescFlags, QueueStatus

__all__ = ["DescQueues", "ChainPort", "CqClaimSignature", "RetireSignature", "RETIRE_PORTS", "INFLIGHT",
           "SchedState", "registered_look_up"]

#: Completions the completion writer retires per cycle at most.
RETIRE_PORTS = 3
#: Descriptor fetches in flight at most.
INFLIGHT = 8
#: Hints waiting for the fetcher, per source (doorbells, each engine's pops).
HINTS = 4


class SchedState:
    """A transmit queue's place in the schedule (``sched`` memory)."""
    IDLE = 0          # no chain cached, or not running: nothing to do
    QUEUED = 1        # in the work FIFO, or with the engine
    PARKED = 2        # a chain cached, its completion queue full


class ChainPort(wiring.Signature):
    """An engine's view of one side's queues (engine side is ``In``).

    The engine names the queue, and the descriptor of its head chain, to look
    at next cycle (the chains and descriptors are in block RAM), by choosing
    among what the unit has computed ahead, so that its decision is not
    followed by arithmetic before the memories' addresses:

    alt      In: the queue to look at next unless ``keep``
    keep     In(1): look at the shown queue again
    step     In(1): ... at the descriptor after the one shown
    stay     In(1): ... at the descriptor shown (otherwise, and after a pop,
             at the first of the head chain); on the transmit side only with
             ``keep``
    q, at    Out: the shown queue (named last cycle) and descriptor
    running  Out(1): the shown queue is enabled and not in error
    ready    Out(1): ... and has a complete chain cached
    more     Out(1): ... and another after it (a pop this cycle leaves one)
    len      Out: descriptors in the shown queue's head chain;
             err: its QueueStatus (first bad descriptor)
    bytes    Out(16): its total buffer length (saturating at 0xFFFF)
    desc     Out(Descriptor): its descriptor ``idx`` (of the previous cycle)
    head     Out(16): ring index of its first descriptor
    cq       Out(8): the shown queue's completion queue (of its incarnation)
    fetching Out(1): descriptors posted to the shown queue are still on their
             way in (the receive side only: its frames wait for them)
    room     Out(1): the shown queue may claim a slot of its completion queue this cycle
    full     Out(1): the shown queue's completion queue has no free slot at all
             (neither is set in the first cycle a queue on another completion
             queue is shown: its room is still being looked up)
    claim    In(1): the engine starts the shown queue's chain: its completion slot is taken
    hold     In(1): the engine is inside a chain of the shown queue
    pop      In(1): the shown queue's chain is done; a look-up in the same
             cycle already sees the next chain

    With ``scheduled`` (the transmit side) also:

    work     Out(stream of queue numbers): queues with a chain to send, each
             at most once; a queue taken is the engine's until it gives it back
    release  In(1): the engine gives the shown queue back (after a pop, or
             because it is not ready or its completion queue has no room)

    ``room`` and ``full`` answer for the completion queue of the look-up
    shown last cycle, and ``claim`` takes a slot of that one: an engine acts on
    a look-up it has registered, after naming the same queue and descriptor
    two cycles running.
    """

    def __init__(self, n, d, scheduled=False):
        members = {
            "alt": In(range(max(n, 2))), "keep": In(1), "step": In(1), "stay": In(1),
            "q": Out(range(max(n, 2))), "at": Out(range(max(d, 2))),
            "running": Out(1), "ready": Out(1), "more": Out(1),
            "len": Out(range(d + 1)), "err": Out(4), "bytes": Out(16),
            "head": Out(16), "cq": Out(8),
            "desc": Out(Descriptor), "room": Out(1), "full": Out(1),
            "claim": In(1), "hold": In(1), "pop": In(1),
        }
        if not scheduled:
            members["fetching"] = Out(1)
        if scheduled:
            members.update({"work": Out(stream.Signature(range(max(n, 2)))), "release": In(1)})
        super().__init__(members)


def registered_look_up(m, port, extra=None):
    """What ``port`` (an engine's side of a :class:`ChainPort`) shows, in
    flip-flops on the next cycle: the chain (``running``, ``ready``,
    ``more``, ``len``, ``err``, ``bytes``, ``head``, ``cq``, and ``fetching``
    where the port has it), its descriptor (``addr``, ``dlen``), whether that
    is the chain's last (``last``), and ``extra``: {name: (shape, value)}
    that the engine works out from what is shown. The engine acts on it only
    after naming the same queue and descriptor again."""
    fields = {"running": 1, "ready": 1, "more": 1, "len": port.len.shape(), "err": 4, "bytes": 16,
              "head": 16, "cq": 8, "addr": 64, "dlen": 32, "last": 1}
    values = {"running": port.running, "ready": port.ready, "more": port.more, "len": port.len,
              "err": port.err, "bytes": port.bytes, "head": port.head, "cq": port.cq,
              "addr": port.desc.addr, "dlen": port.desc.len,
              "last": (port.at + 1)[:len(port.len)] == port.len}
    if hasattr(port, "fetching"):
        fields["fetching"] = 1
        values["fetching"] = port.fetching
    for name, (shape, value) in (extra or {}).items():
        fields[name] = shape
        values[name] = value
    lk = Signal(data.StructLayout(fields), name="lk")
    m.d.sync += [getattr(lk, name).eq(value) for name, value in values.items()]
    return lk


class CqClaimSignature(wiring.Signature):
    """Completion slots, queue side (``Out``). Every cycle the queue side names
    three completion queues: ``tx.cq`` and ``rx.cq`` (of the queues the engines
    are shown) and ``scan`` (of the transmit queue the scheduler decides for);
    ``room`` says, for each in that order, whether it runs and has a free slot,
    ``room2`` whether ``rx.cq`` has two, ``full`` (for ``tx.cq``, ``rx.cq``)
    that it has none. The engines' answers come from a look-up a cycle ahead:
    in the first cycle a different queue is named, neither ``room`` nor
    ``full`` is set. ``tx.en``/``rx.en`` claim a slot of ``tx.cq``/``rx.cq``."""

    def __init__(self, num_cqs):
        claim = wiring.Signature({"en": Out(1), "cq": Out(8)})
        super().__init__({"room": In(3), "room2": In(1), "full": In(2), "tx": Out(claim), "rx": Out(claim),
                          "scan": Out(8)})


class RetireSignature(wiring.Signature):
    """A chain's completion was written or dropped: queue ``q`` (transmit
    queues first) has one chain fewer outstanding."""

    def __init__(self, num_queues):
        super().__init__({"en": Out(1), "q": Out(range(2 * num_queues))})


class DescQueues(wiring.Component):
    """
    dma    Out(DmaReadClient): descriptor fetches
    tx, rx Out(ChainPort): the engines' views (the transmit side scheduled)
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
        # Ring bases are read when a fetch is decided, the control word by the
        # start unit (block RAM, a cycle after it names the queue).
        self._base_rd = [tables[k].read_port("BASE") for k in ("TXQ", "RXQ")]
        self._ctrl_rd = [tables[k].read_port("CTRL") for k in ("TXQ", "RXQ")]
        self._ctrl_written = [tables[k].written("CTRL") for k in ("TXQ", "RXQ")]
        for k in ("TXQ", "RXQ"):
            tables[k].late("STATE")
            tables[k].late("ERROR")
        super().__init__({
            "dma": Out(DmaReadClient(config.data_width)),
            "tx": Out(ChainPort(n, d, scheduled=True)),
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
        cfg_l = data.StructLayout({"gen": 8, "log": 4, "cq": 8, "pd": 4, "on": 1, "drain": 1})
        acc_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "first": 16, "ch_wr": DB + 1, "code": 4})
        head_l = data.StructLayout({"gen": 8, "head": 16})
        info_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "index": 16, "next": DB})
        # The configuration is written by the start unit only (as an
        # incarnation starts, stops and has drained); every reader takes it
        # through a bypass for the cycle it is written (``fresh_read``).
        m.submodules.cfg_mem = cfg_mem = state_memory(shape=cfg_l, depth=Q)
        m.submodules.tail_mem = tail_mem = Memory(shape=16, depth=Q, init=[])
        m.submodules.fetch_mem = fetch_mem = Memory(shape=16, depth=Q, init=[])
        # The arrival path's entry in two memories, for their readers: the
        # chain being cached (the arrival path only); the chains completed and
        # the fault code (also the engines, the schedulers and the register
        # window: whoever asks whether the queue runs and has a chain).
        part_l = data.StructLayout({"len": DB + 1, "err": 4, "bytes": 16, "first": 16})
        m.submodules.acc_mem = acc_mem = Memory(shape=part_l, depth=Q, init=[])
        arr_l = data.StructLayout({"ch_wr": DB + 1, "code": 4})
        m.submodules.arr_mem = arr_mem = Memory(shape=arr_l, depth=Q, init=[])
        # A cached descriptor keeps its address, length and MORE (the only
        # flag defined): 97 bits, not 128.
        cached_l = data.StructLayout({"addr": 64, "len": 32, "more": 1})
        head_mem, cache, info = [], [], []
        for side, sn in enumerate(("tx", "rx")):
            # The engine's head entry: its readers take it a cycle late (the
            # fetcher and the doorbell check only see less room, never more),
            # so it is read without bypass logic; a pop in the cycle of their
            # read comes from a register (``head_after_read``).
            head_mem.append(state_memory(shape=head_l, depth=N))
            cache.append(Memory(shape=cached_l, depth=N * D, init=[]))
            info.append(Memory(shape=info_l, depth=N * D, init=[]))
            m.submodules[f"head_{sn}"] = head_mem[side]
            m.submodules[f"cache_{sn}"] = cache[side]
            m.submodules[f"chains_{sn}"] = info[side]
        # The engines' cache read pointers, a memory a side: slot of the head
        # chain, chains popped. Written by pops and, before an incarnation
        # starts, cleared like the other entries (on a cycle with no pop).
        ptr_l = data.StructLayout({"c_head": DB, "ch_rd": DB + 1})
        ptr_mem = [Memory(shape=ptr_l, depth=N, init=[]) for _ in range(2)]
        m.submodules.ptr_tx, m.submodules.ptr_rx = ptr_mem
        cfg_wp = cfg_mem.write_port()
        tail_wp = tail_mem.write_port()
        fetch_wp = fetch_mem.write_port()
        acc_wp = acc_mem.write_port()
        arr_wp = arr_mem.write_port()
        head_wp = [mem.write_port() for mem in head_mem]
        cache_wp = [mem.write_port() for mem in cache]
        info_wp = [mem.write_port() for mem in info]
        ptr_wp = [mem.write_port() for mem in ptr_mem]

        def size_of(log):
            return (Const(1, 17) << log)[:17]

        def head_of(entry, gen):
            """A head entry written in another incarnation reads as 0."""
            return Mux(entry.gen == gen, entry.head, 0)

        def read(mem, wp, addr, name):
            """A transparent read of ``mem`` at ``addr``: the entry, with this
            cycle's write to it, on the next cycle."""
            rp = mem.read_port(transparent_for=(wp,))
            m.d.comb += rp.addr.eq(addr)
            return rp.data

        # After a reset the start unit sweeps the configuration (the memories
        # keep their contents); until it has, no queue runs.
        swept = Signal()

        def is_on(c):
            return c.on & swept

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
        clr_gen = Signal(8)                       # the generation the queue starts with

        # Hints for the fetcher: queues whose doorbell was taken, queues an
        # engine popped a chain of (their cache has room again).
        m.submodules.hint_db = hint_db = fifo.SyncFIFO(width=QB, depth=HINTS)
        hint_pop = [fifo.SyncFIFO(width=max(NB, 1), depth=HINTS) for _ in range(2)]
        m.submodules.hint_pop_tx, m.submodules.hint_pop_rx = hint_pop

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
        d_cfg = fresh_read(m, cfg_mem, a_q, cfg_wp, name="d_cfg")
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
        d_ok = is_on(d_cfg) & (ahead <= size_of(d_cfg.log)) & (ahead >= fetched)
        m.d.comb += self.db_ignored.eq(d_valid & ~d_ok)
        with m.If(d_valid & d_ok):
            m.d.comb += [tail_wp.addr.eq(d_q), tail_wp.data.eq(d_tail), tail_wp.en.eq(1)]
        with m.Elif(clr_req[0]):
            m.d.comb += [tail_wp.addr.eq(clr_q), tail_wp.data.eq(0), tail_wp.en.eq(1), clr_done[0].eq(1)]
        m.d.comb += [hint_db.w_en.eq(d_valid & d_ok & (ahead != fetched)), hint_db.w_data.eq(d_q)]

        # ---------------------------------------------------------------- fetch
        # One queue a cycle is decided for: the queue decided for again while
        # it has descriptors to fetch and room for them (from a register: the
        # decision does not reach the read addresses), else a hint (doorbell
        # first, then the engines' pops), else the scanner's next queue; while
        # hints wait the scanner still takes every other cycle. Its entries
        # are read in that cycle, what they come to is worked out in the next
        # (``b_``), and the fetch is decided and written in the one after
        # (``c_``). A queue is not read while it is being worked out (its
        # decision could still write what the read would miss): a hint for
        # it waits a cycle, and the scanner and a decision again are passed
        # by (the queue is decided with newer entries anyway).
        inflight = PeekFifo(m, data.StructLayout({"q": QB, "gen": 8, "n": DB + 1, "first": 16}), INFLIGHT,
                            "inflight")
        again = Signal()
        again_r = Signal()
        b_q = Signal(QB)
        again_q = Signal(QB)
        p_q = Signal(QB)
        f_scan = Signal(QB)
        alt = Signal()
        b_valid = Signal()
        busy_q = Signal()                 # p_q is being worked out: no read of it this cycle
        hint_srcs = [(hint_db.r_rdy, hint_db.r_data, hint_db)] + [
            (h.r_rdy, Cat(h.r_data[:NB], Const(k, 1)), h) for k, h in enumerate(hint_pop)]
        any_hint = Cat(*[r for r, _, _ in hint_srcs]).any()
        use_hint = ~again_r & any_hint & ~alt
        hint_q = Signal(QB)
        with m.If(hint_srcs[2][0]):
            m.d.comb += hint_q.eq(hint_srcs[2][1])
        for k in (1, 0):
            with m.If(hint_srcs[k][0]):
                m.d.comb += hint_q.eq(hint_srcs[k][1])
        taken = Const(0)
        for rdy, _, h in hint_srcs:
            m.d.comb += h.r_en.eq(use_hint & rdy & ~taken & ~busy_q)
            taken = taken | rdy
        with m.If(again_r):
            m.d.comb += p_q.eq(again_q)
        with m.Elif(use_hint):
            m.d.comb += p_q.eq(hint_q)
        with m.Else():
            m.d.comb += p_q.eq(f_scan)
            with m.If(~busy_q):
                m.d.sync += f_scan.eq(f_scan + 1)
        m.d.comb += busy_q.eq(b_valid & (p_q == b_q))
        with m.If(~again_r & any_hint):
            m.d.sync += alt.eq(~alt)
        m.d.sync += [b_valid.eq(~busy_q), b_q.eq(p_q)]
        f_cfg = fresh_read(m, cfg_mem, p_q, cfg_wp, name="f_cfg")
        f_tail = read(tail_mem, tail_wp, p_q, "f_tail")
        f_fetch = read(fetch_mem, fetch_wp, p_q, "f_fetch")
        f_arr = arr_l(read(arr_mem, arr_wp, p_q, "f_arr"))
        f_code, f_chw = f_arr.code, f_arr.ch_wr
        f_ptr = [ptr_l(read(ptr_mem[k], ptr_wp[k], within(p_q), f"f_ptr_{k}")) for k in range(2)]
        f_head_rd = [sync_read(m, mem, within(p_q), name=f"f_head_{k}") for k, mem in enumerate(head_mem)]
        f_head = head_after_read(p_q, f_head_rd, f_cfg.gen, "f")
        f_size = size_of(f_cfg.log)
        pending = Signal(17)
        to_end = Signal(17)
        free = Signal(17)
        m.d.comb += [pending.eq((f_tail - f_fetch)[:16]),
                     to_end.eq(f_size - (f_fetch & (f_size - 1))),
                     free.eq(D - (f_fetch - f_head)[:16])]
        # A queue is fetched for once a quarter of its cache is free (or all
        # it has pending fits), a quarter at a time: descriptors come several
        # to a read, not one by one, and while some are being used the next
        # ones are on their way (behind a long read latency, the cache is
        # what bounds a queue's small frames). The count is the least of
        # what is pending, a quarter, what is left to the ring's end and the
        # room: two pairs here, the last pick in the next cycle.
        quarter = max(1, D // 4)
        short = pending < quarter
        want = Mux(short, pending, quarter)
        to_room = Mux(to_end < free, to_end, free)
        # With no complete chain cached no pop will free more room: what
        # fits is fetched (the chain ends, or reaches the cache size and
        # faults), rather than waiting for room that never comes.
        no_chain = f_chw == Mux(side_of(b_q), f_ptr[1].ch_rd, f_ptr[0].ch_rd)
        fits = Mux(short, free >= pending, free >= quarter) | (no_chain & (free != 0))
        c_valid = Signal()
        c_q = Signal(QB)
        c_gen = Signal(8)
        c_fetch = Signal(16)
        c_off = Signal(20)
        c_want = Signal(17)
        c_room = Signal(17)
        c_new = [Signal(16, name="c_new_want"), Signal(16, name="c_new_room")]   # the fetch pointer after either
        m.d.sync += [c_valid.eq(b_valid & is_on(f_cfg) & (f_code == 0) & (pending != 0) & fits),
                     c_q.eq(b_q), c_gen.eq(f_cfg.gen), c_fetch.eq(f_fetch),
                     c_off.eq((f_fetch & (f_size - 1)) << 4), c_want.eq(want), c_room.eq(to_room),
                     c_new[0].eq(f_fetch + want), c_new[1].eq(f_fetch + to_room)]
        n_fetch = Signal(DB + 1)
        by_room = c_room < c_want
        m.d.comb += n_fetch.eq(Mux(by_room, c_room, c_want))
        # The request goes out from a register the next cycle, with the ring
        # base read from the table alongside the entries.
        req = self.dma.req
        r_valid = Signal()
        r_rx = Signal()
        r_off = Signal(20)
        r_len = Signal(DB + 5)
        r_free = ~r_valid | req.ready
        # A queue without room is left: its engine's next pop hints it again.
        m.d.comb += again.eq(c_valid & ~clr_req[1])
        m.d.sync += [again_r.eq(again), again_q.eq(c_q)]
        m.d.comb += [f_commit_q.eq(c_q), f_new.eq(Mux(by_room, c_new[1], c_new[0])),
                     f_commit.eq(again & inflight.w_rdy & r_free)]
        m.d.comb += [req.valid.eq(r_valid),
                     req.payload.addr.eq(Mux(r_rx, self._base_rd[1].data, self._base_rd[0].data) + r_off),
                     req.payload.len.eq(r_len)]
        # The ring base is read as the fetch is decided, and held while the
        # request waits for the multiplexer (no decision is taken meanwhile).
        for side in range(2):
            m.d.comb += [self._base_rd[side].addr.eq(within(c_q)), self._base_rd[side].en.eq(f_commit)]
        with m.If(req.ready):
            m.d.sync += r_valid.eq(0)
        with m.If(f_commit):
            m.d.comb += [fetch_wp.addr.eq(c_q), fetch_wp.data.eq(f_new), fetch_wp.en.eq(1),
                         inflight.w_en.eq(1), inflight.w_data.q.eq(c_q), inflight.w_data.gen.eq(c_gen),
                         inflight.w_data.n.eq(n_fetch), inflight.w_data.first.eq(c_fetch)]
            m.d.sync += [r_valid.eq(1), r_rx.eq(side_of(c_q)), r_off.eq(c_off),
                         r_len.eq(n_fetch << 4), f_issued.eq(f_issued + 1)]
        with m.Elif(clr_req[1]):
            m.d.comb += [fetch_wp.addr.eq(clr_q), fetch_wp.data.eq(0), fetch_wp.en.eq(1), clr_done[1].eq(1)]

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
        a_arr_rd = arr_mem.read_port(transparent_for=(arr_wp,))
        a_addr = Signal(QB)
        a_read_q = Signal(QB)
        m.d.comb += a_addr.eq(Mux(end_of_group, inflight.next.q, g.q))
        m.d.comb += [a_acc_rd.addr.eq(a_addr), a_arr_rd.addr.eq(a_addr)]
        a_cfg = fresh_read(m, cfg_mem, a_addr, cfg_wp, name="a_cfg")
        m.d.sync += a_read_q.eq(a_addr)
        m.d.comb += stall.eq((a_read_q != g.q) | clr_req[2])
        r_q = g.q
        acc = acc_l(Cat(a_acc_rd.data, a_arr_rd.data))
        k = Signal(DB + 1)            # descriptor of the group
        with m.If(end_of_group):
            m.d.sync += k.eq(0)
        with m.Elif(word_take):
            m.d.sync += k.eq(k + 1)
        current = (g.gen == a_cfg.gen) & is_on(a_cfg)
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
            m.d.comb += [cache_wp[side].addr.eq(Cat(index[:DB], within(r_q))),
                         cache_wp[side].data.eq(Cat(desc.addr, desc.len, ~r_end)),
                         cache_wp[side].en.eq(taking & (is_rx == side)),
                         info_wp[side].addr.eq(Cat(r_first[:DB], within(r_q))),
                         info_wp[side].data.len.eq(r_len), info_wp[side].data.err.eq(r_err),
                         info_wp[side].data.bytes.eq(r_bytes), info_wp[side].data.index.eq(r_first),
                         info_wp[side].data.next.eq(index + 1),
                         info_wp[side].en.eq(taking & (is_rx == side) & r_end)]
        with m.If(taking):
            m.d.comb += [self.prot.eq(code == QueueStatus.PROTECTION), self.zero.eq(code == QueueStatus.ZERO_LENGTH)]
            with m.If(r_end):
                m.d.comb += [nxt.len.eq(0), nxt.err.eq(0), nxt.bytes.eq(0), nxt.first.eq(0),
                             nxt.ch_wr.eq(acc.ch_wr + 1)]
            with m.Else():
                m.d.comb += [nxt.len.eq(r_len), nxt.err.eq(r_err), nxt.bytes.eq(r_bytes), nxt.first.eq(r_first)]
        # A chain completed for a transmit queue: the transmit scheduler hears of it.
        chain_done_tx = taking & r_end & ~is_rx
        # A chain as long as the cache or the ring without an end can never
        # complete; a failed fetch stops the queue too.
        fault_code = Signal(4)
        too_long = taking & ~r_end & ((r_len >= D) | (r_len >= size_of(a_cfg.log)))
        failed = end_of_group & current & (resp.payload.status != 0)
        m.d.comb += fault_code.eq(Mux(too_long, ERROR_CHAIN_TOO_LONG, resp.payload.status))
        fault = (too_long | failed) & (acc.code == 0)
        with m.If(fault):
            m.d.comb += nxt.code.eq(fault_code)
        m.d.comb += self.fault.eq(fault)
        # The entry written (the arrival path's, or a clear for a new
        # incarnation) goes to its two memories at once.
        acc_w = Signal(acc_l)
        acc_w_q = Signal(QB)
        acc_w_en = Signal()
        with m.If(taking | failed):
            m.d.comb += [acc_w_q.eq(r_q), acc_w.eq(nxt), acc_w_en.eq(1)]
        with m.Elif(clr_req[2]):
            m.d.comb += [acc_w_q.eq(clr_q), acc_w_en.eq(1), clr_done[2].eq(1)]
        for wp, value in ((acc_wp, acc_w.as_value()[:part_l.size]), (arr_wp, Cat(acc_w.ch_wr, acc_w.code))):
            m.d.comb += [wp.addr.eq(acc_w_q), wp.data.eq(value), wp.en.eq(acc_w_en)]
        with m.If(end_of_group):
            m.d.comb += inflight.r_en.eq(1)
            m.d.sync += f_ended.eq(f_ended + 1)

        # ---------------------------------------------------------- engines' ports
        # An engine names the queue and descriptor it will look at (``sel``,
        # ``idx``: the shown queue or ``alt``; the first descriptor, the one
        # shown or the next); the chain and the descriptor come out of block
        # RAM on the next cycle, for ``sel_q``. The look-up sees this cycle's
        # pop of the queue shown (its heads move on) and this cycle's writes
        # (transparent). The addresses of every choice are computed before the
        # engine decides, which only picks one.
        sel_qs = []
        shown_cfg = []
        shown_ready = []
        for side, port in enumerate(ports):
            sn = "rx" if side else "tx"
            sel_q = Signal(range(max(N, 2)), name=f"sel_q_{sn}")
            at = Signal(DB, name=f"at_{sn}")
            sel = Signal(range(max(N, 2)), name=f"sel_{sn}")
            sel_qs.append(sel_q)
            m.d.comb += [sel.eq(Mux(port.keep, sel_q, port.alt)), port.q.eq(sel_q), port.at.eq(at)]
            m.d.sync += sel_q.eq(sel)
            with m.If(port.pop | ~(port.step | port.stay)):
                m.d.sync += at.eq(0)
            with m.Elif(port.step):
                m.d.sync += at.eq(at + 1)
            named = Cat(sel, Const(side, 1))
            rd = cache[side].read_port(transparent_for=(cache_wp[side],))
            ird = info[side].read_port(transparent_for=(info_wp[side],))
            e_cfg = fresh_read(m, cfg_mem, named, cfg_wp, name=f"e_cfg_{sn}")
            e_arr = arr_l(read(arr_mem, arr_wp, named, f"e_arr_{sn}"))
            e_chw, e_code = e_arr.ch_wr, e_arr.code
            shown_cfg.append(e_cfg)
            ch = ird.data
            # The pointers of ``alt`` (before this cycle's pop, which the
            # look-up adds itself) and of the shown queue; for each, where its
            # head chain starts (after a pop, if it is the shown queue: where
            # the chain popped ends, which its record keeps) and the
            # descriptors that may be named in it.
            ptr_alt = ptr_mem[side].read_port(domain="comb")
            ptr_shown = ptr_mem[side].read_port(domain="comb")
            m.d.comb += [ptr_alt.addr.eq(port.alt), ptr_shown.addr.eq(sel_q)]
            chain_at = []
            desc_at = []
            # (The transmit engine steps only in the queue it keeps.)
            popped = ch.next
            for c_head, is_shown, steps in ((ptr_shown.data.c_head, Const(1), True),
                                            (ptr_alt.data.c_head, port.alt == sel_q, side == 1)):
                first, here, after = Signal(DB), Signal(DB), Signal(DB)
                m.d.comb += [first.eq(c_head), here.eq(c_head + at), after.eq(c_head + at + 1)]
                chain_at.append(Mux(port.pop & is_shown, popped, first))
                desc_at.append(Mux(port.pop & is_shown, popped,
                                   Mux(port.step, after, Mux(port.stay, here, first)) if steps else first))
            sq = Cat(sel_q, Const(side, 1))
            # Complete chains cached for the shown queue: those arrived (read
            # when it was named) less those popped (up to last cycle).
            cached = Signal(DB + 1, name=f"cached_{sn}")
            running = Signal(name=f"running_{sn}")
            m.d.comb += [cached.eq((e_chw - ptr_shown.data.ch_rd)[:DB + 1]),
                         running.eq(is_on(e_cfg) & (e_code == 0))]
            shown_ready.append(running & (cached != 0))
            m.d.comb += [
                ird.addr.eq(Cat(Mux(port.keep, chain_at[0], chain_at[1]), sel)),
                rd.addr.eq(Cat(Mux(port.keep, desc_at[0], desc_at[1]), sel)),
                port.running.eq(running), port.ready.eq(shown_ready[side]), port.more.eq(running & (cached >= 2)),
                port.len.eq(ch.len), port.err.eq(ch.err), port.bytes.eq(ch.bytes), port.head.eq(ch.index),
                port.desc.addr.eq(rd.data.addr), port.desc.len.eq(rd.data.len),
                port.desc.flags.eq(Mux(rd.data.more, DescFlags.MORE, 0)), port.cq.eq(e_cfg.cq),
            ]
            if side == 1:
                # Only the receive engine waits for descriptors on their way.
                e_tail = read(tail_mem, tail_wp, named, "e_tail")
                e_fetch = read(fetch_mem, fetch_wp, named, "e_fetch")
                m.d.comb += port.fetching.eq((e_tail != e_fetch) | inflight.has("q", sq))
            # A pop: the head chain moves on.
            wp = ptr_wp[side]
            with m.If(port.pop):
                m.d.comb += [wp.addr.eq(sel_q), wp.en.eq(1), wp.data.c_head.eq(ptr_shown.data.c_head + ch.len),
                             wp.data.ch_rd.eq(ptr_shown.data.ch_rd + 1),
                             head_wp[side].addr.eq(sel_q), head_wp[side].en.eq(1),
                             head_wp[side].data.gen.eq(e_cfg.gen), head_wp[side].data.head.eq(ch.index + ch.len)]
            with m.Elif(clr_req[3] & (side_of(clr_q) == side)):
                # ... and its head entry is that of the next incarnation, at 0.
                m.d.comb += [wp.addr.eq(within(clr_q)), wp.en.eq(1), wp.data.eq(0), clr_done[3].eq(1),
                             head_wp[side].addr.eq(within(clr_q)), head_wp[side].en.eq(1),
                             head_wp[side].data.gen.eq(clr_gen), head_wp[side].data.head.eq(0)]
            m.d.comb += [pop_wr[side].eq(port.pop), pop_wr_q[side].eq(sel_q),
                         pop_wr_head[side].eq(ch.index + ch.len),
                         hint_pop[side].w_en.eq(port.pop), hint_pop[side].w_data.eq(sel_q)]
            with m.If(port.pop):
                m.d.sync += pops[side].eq(pops[side] + 1)

        # Completion slots: a queue may start a chain only when its completion
        # queue has room.
        cl = self.claim
        # The receive side must not take the last slot of a completion queue
        # that the transmit side may claim in the same cycle; rather than wait
        # for the transmit side's decision (a long combinational path through
        # its DMA request), it asks for two slots whenever the look-up the
        # transmit engine registered is ready and bound to the same one, and
        # waits (``full`` says when there is no slot at all: then it drops).
        # The engines act on a look-up they have kept for a cycle (so that
        # nothing they decide comes straight out of block RAM): their
        # completion queues are named from registers, those of the look-ups
        # shown last cycle.
        tx_cq, rx_cq = Signal(8), Signal(8)
        tx_ready = Signal()
        m.d.sync += [tx_cq.eq(shown_cfg[0].cq), rx_cq.eq(shown_cfg[1].cq), tx_ready.eq(shown_ready[0])]
        m.d.comb += [
            self.tx.room.eq(cl.room[0]),
            self.tx.full.eq(cl.full[0]),
            self.rx.room.eq(Mux(tx_ready & (tx_cq == rx_cq), cl.room2, cl.room[1])),
            self.rx.full.eq(cl.full[1]),
            cl.tx.en.eq(self.tx.claim), cl.tx.cq.eq(tx_cq),
            cl.rx.en.eq(self.rx.claim), cl.rx.cq.eq(rx_cq),
        ]

        # ------------------------------------------------------ transmit schedule
        # One decision a cycle, for a queue the engine gave back (last cycle),
        # else one a chain completed for, else the scanner's next: its
        # schedule state, configuration, fault code, chains and completion
        # queue's room are read, and the next cycle decides. A queue given back,
        # or not in the work FIFO already, enters it if it runs with a chain
        # cached and room for its completion; with no room it is parked (the
        # scanner lets it in once there is); otherwise it is idle.
        m.submodules.work = work = fifo.SyncFIFOBuffered(width=max(NB, 1), depth=max(N, 2))
        sched_mem = Memory(shape=2, depth=max(N, 2), init=[])
        m.submodules.sched_mem = sched_mem
        sched_wp = sched_mem.write_port()
        rel_v, rel_q = Signal(), Signal(range(max(N, 2)))
        m.d.sync += [rel_v.eq(self.tx.release), rel_q.eq(sel_qs[0])]
        arr_v, arr_q = Signal(), Signal(range(max(N, 2)))
        t_scan = Signal(range(max(N, 2)))
        o_q = Signal(range(max(N, 2)))
        with m.If(rel_v):
            m.d.comb += o_q.eq(rel_q)
        with m.Elif(arr_v):
            m.d.comb += o_q.eq(arr_q)
            m.d.sync += arr_v.eq(0)
        with m.Else():
            m.d.comb += o_q.eq(t_scan)
            m.d.sync += t_scan.eq(Mux(t_scan == N - 1, 0, t_scan + 1))
        # A chain completed while one waits replaces it (the scanner finds the other).
        with m.If(chain_done_tx):
            m.d.sync += [arr_v.eq(1), arr_q.eq(within(r_q))]
        s_q, s_rel = Signal(range(max(N, 2))), Signal()
        m.d.sync += [s_q.eq(o_q), s_rel.eq(rel_v)]
        o_full = Cat(o_q, Const(0, 1))
        s_state = read(sched_mem, sched_wp, o_q, "s_state")
        s_cfg = fresh_read(m, cfg_mem, o_full, cfg_wp, name="s_cfg")
        s_arr = arr_l(read(arr_mem, arr_wp, o_full, "s_arr"))
        s_code, s_chw = s_arr.code, s_arr.ch_wr
        s_ptr = ptr_l(read(ptr_mem[0], ptr_wp[0], o_q, "s_ptr"))
        m.d.comb += cl.scan.eq(s_cfg.cq)
        s_ready = is_on(s_cfg) & (s_code == 0) & (s_chw != s_ptr.ch_rd)
        # Until the sweep is over, the scanner returns every queue to idle.
        s_act = s_rel | (s_state != SchedState.QUEUED) | ~swept
        s_push = s_act & s_ready & cl.room[2] & work.w_rdy
        m.d.comb += [work.w_en.eq(s_push), work.w_data.eq(s_q),
                     sched_wp.addr.eq(s_q), sched_wp.en.eq(s_act),
                     sched_wp.data.eq(Mux(s_push, SchedState.QUEUED,
                                          Mux(s_ready, SchedState.PARKED, SchedState.IDLE)))]
        m.d.comb += [self.tx.work.valid.eq(work.r_rdy), self.tx.work.payload.eq(work.r_data),
                     work.r_en.eq(self.tx.work.ready)]

        # ------------------------------------------------------- start and drain
        # A scanner visits one queue a cycle, comparing ENABLE with its
        # configuration. A queue to stop is stopped at once (and drains); one
        # draining, or enabled and not running, is taken: wait until no engine
        # holds it, note how many fetches were issued and chains popped by
        # then, wait until as many have ended and been retired; then (if
        # ENABLE is set) clear its entries and start it.
        u_scan = Signal(QB)
        u_scan_q = Signal(QB)
        u_q = Signal(QB)
        u_side = side_of(u_q)
        mark_f = Signal(16)
        mark_p = Signal(16)
        u_settled = Signal(2)
        held = Signal()
        m.d.comb += held.eq(Mux(u_side, self.rx.hold & (sel_qs[1] == within(u_q)),
                                self.tx.hold & (sel_qs[0] == within(u_q))))
        u_addr = Signal(QB)
        u_cfg = fresh_read(m, cfg_mem, u_addr, cfg_wp, own=True, name="u_cfg")
        for side in range(2):
            m.d.comb += self._ctrl_rd[side].addr.eq(within(u_addr))
        # Each CTRL write stamps its queue (a running count of CTRL writes);
        # an incarnation records the stamp it started with, so that a queue
        # written since (even disabled and enabled again before the scanner
        # came by) is stopped and restarted with what was written.
        ev = self._ctrl_written
        ev_stb = ev[0].stb | ev[1].stb
        ev_q = Signal(QB)
        m.d.comb += ev_q.eq(Mux(ev[1].stb, Cat(ev[1].entry[:NB], Const(1, 1)), Cat(ev[0].entry[:NB], Const(0, 1))))
        stamps = WriteStamps(m, Q, ev_stb, ev_q, "ctrl")
        u_stamp, stale = stamps.read(u_addr, "u", own=True)
        u_read_side = Signal()
        m.d.sync += [u_read_side.eq(side_of(u_addr)), u_scan_q.eq(u_addr)]
        u_ctrl = Mux(u_read_side, self._ctrl_rd[1].data, self._ctrl_rd[0].data)
        u_en = get_field(u_ctrl, ctrl_reg, "ENABLE")
        pending_clr = Signal(4)
        m.d.comb += [clr_q.eq(u_q), clr_req.eq(pending_clr), clr_gen.eq((u_cfg.gen + 1)[:8])]
        new_cfg = Signal(cfg_l)
        m.d.comb += [new_cfg.eq(u_cfg), cfg_wp.data.eq(new_cfg)]
        with m.FSM(name="queue_start"):
            with m.State("Sweep"):
                m.d.comb += [u_addr.eq(u_scan), cfg_wp.addr.eq(u_scan), cfg_wp.en.eq(1), new_cfg.eq(0)]
                m.d.sync += u_scan.eq(u_scan + 1)
                with m.If(u_scan == Q - 1):
                    m.d.sync += swept.eq(1)
                    m.next = "Idle"
            with m.State("Idle"):
                m.d.comb += u_addr.eq(u_scan)
                m.d.sync += u_scan.eq(u_scan + 1)
                with m.If(u_cfg.drain | (u_cfg.on & (~u_en | stale)) | (~u_cfg.on & u_en)):
                    m.d.sync += u_q.eq(u_scan_q)
                    m.d.comb += [u_addr.eq(u_scan_q)]
                    m.d.sync += u_scan.eq(u_scan)
                    with m.If(u_cfg.on):
                        m.d.comb += [cfg_wp.addr.eq(u_scan_q), cfg_wp.en.eq(1),
                                     new_cfg.on.eq(0), new_cfg.drain.eq(1)]
                    m.next = "Held"
                with m.Elif(stale):
                    # A CTRL write to a queue that stays stopped: taken.
                    m.d.comb += [*stamps.take(u_scan_q, u_stamp)]
            with m.State("Held"):
                # A fetch decided from entries read as the stop was written
                # (a distributed RAM shows a write from the next cycle) commits
                # two cycles after it and is counted a cycle later: the count
                # is taken no earlier.
                m.d.comb += u_addr.eq(u_q)
                with m.If(u_settled != 3):
                    m.d.sync += u_settled.eq(u_settled + 1)
                with m.If(~held & (u_settled == 3)):
                    m.d.sync += u_settled.eq(0)
                    m.d.sync += [mark_f.eq(f_issued), mark_p.eq(Mux(u_side, pops[1], pops[0]))]
                    m.next = "Drain"
            with m.State("Drain"):
                m.d.comb += u_addr.eq(u_q)
                with m.If(passed(f_ended, mark_f) & passed(Mux(u_side, rets[1], rets[0]), mark_p)):
                    with m.If(u_en):
                        m.d.sync += pending_clr.eq(0b1111)
                        m.next = "Clear"
                    with m.Else():
                        m.d.comb += [cfg_wp.addr.eq(u_q), cfg_wp.en.eq(1), new_cfg.drain.eq(0),
                                     *stamps.take(u_q, u_stamp)]
                        m.next = "Idle"
            with m.State("Clear"):
                m.d.comb += u_addr.eq(u_q)
                # (Done when every clear has been written: from a register,
                # not from this cycle's write ports.)
                m.d.sync += pending_clr.eq(pending_clr & ~clr_done)
                with m.If(pending_clr == 0):
                    m.next = "Start"
            with m.State("Start"):
                # A new incarnation starts empty, with the configuration of now,
                # and a generation its engine's head entry does not carry; it
                # runs from the next cycle (every read of it sees the new one).
                m.d.comb += u_addr.eq(u_q)
                # A CTRL written in the cycle it was read: start on the next visit.
                with m.If(ev_stb & (ev_q == u_q)):
                    m.next = "Idle"
                with m.Else():
                    m.d.comb += [cfg_wp.addr.eq(u_q), cfg_wp.en.eq(1),
                                 *stamps.take(u_q, u_stamp)]
                m.d.comb += [new_cfg.gen.eq(clr_gen),
                             new_cfg.log.eq(get_field(u_ctrl, ctrl_reg, "LOG_SIZE")),
                             new_cfg.cq.eq(get_field(u_ctrl, ctrl_reg, "CQ")),
                             new_cfg.pd.eq(get_field(u_ctrl, ctrl_reg, "PD")),
                             new_cfg.on.eq(u_en), new_cfg.drain.eq(0)]
                m.next = "Idle"
        # Registers read through the tables' windows: the entry being read, a
        # cycle later. A CTRL write not yet taken shows as draining, not
        # running, so that the driver waits for it. (One register is read a
        # cycle: the CTRL stamps are read for the table being read.)
        w_rx = t_q[1].win.r_stb
        w_entry = Signal(QB)
        m.d.comb += w_entry.eq(Mux(w_rx, Cat(t_q[1].r_entry[:NB], Const(1, 1)), Cat(t_q[0].r_entry[:NB], Const(0, 1))))
        _, w_stale = stamps.read(w_entry, "w")
        m_cfg = fresh_read(m, cfg_mem, w_entry, cfg_wp, name="m_cfg")
        m_tail = read(tail_mem, tail_wp, w_entry, "m_tail")
        m_code = arr_l(read(arr_mem, arr_wp, w_entry, "m_arr")).code
        for side in range(2):
            t = t_q[side]
            m_head = sync_read(m, head_mem[side], t.r_entry[:NB], name=f"m_head_{side}")
            m.d.comb += [t.ro_state.eq(Cat(head_of(m_head, m_cfg.gen), m_tail)),
                         t.ro_error.eq(Cat(m_code, Const(0, 4), is_on(m_cfg) & ~w_stale,
                                               (m_cfg.drain & swept) | w_stale | ~swept))]

        return m
