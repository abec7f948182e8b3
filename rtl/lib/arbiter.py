"""Round-robin arbitration: one picker and one grant for every shared path
(the TLP arbiter, the DMA multiplexers, the wire joins)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["lowest_set", "round_robin", "PacketGrant", "PacketArbiter"]


def round_robin(m, n, valids, last_grant):
    """The first index after ``last_grant`` (wrapping round) whose ``valids`` bit
    is set (combinational; meaningless when none is). The request vector is
    rotated so that the candidate after ``last_grant`` comes first, and a
    priority encoder (a tree) picks from it: logic depth grows with log n."""
    valids = Cat(*valids) if isinstance(valids, (list, tuple)) else valids
    w = max(n, 2)
    start = Signal(range(w), name="rr_start")
    m.d.comb += start.eq(Mux(last_grant >= n - 1, 0, last_grant + 1))
    rotated = Signal(n, name="rr_rotated")
    m.d.comb += rotated.eq(Cat(valids, valids).bit_select(start, n))
    first = lowest_set(m, rotated, name="rr_first")
    pick = Signal(range(w), name="rr_pick")
    total = start + first
    m.d.comb += pick.eq(Mux(total >= n, total - n, total))
    return pick


class PacketGrant:
    """A round-robin grant among ``n`` requesters, held from the first transfer
    of a packet (or a group of requests) to its last.

    ``sel`` is the requester granted this cycle: the owner of the packet in
    progress, else the first requester after the last one served. ``active``
    says a transfer may happen (a packet is in progress, or some requester is
    valid and ``hold`` is low). Call :meth:`update` once with the transfer
    strobe and whether it ends the packet.
    """

    def __init__(self, m, n, valids, *, hold=0, name="grant"):
        w = max(n, 2)
        valids = Cat(*valids) if isinstance(valids, (list, tuple)) else valids
        self.locked = Signal(name=f"{name}_locked")
        self.owner = Signal(range(w), name=f"{name}_owner")
        self.prev = Signal(range(w), name=f"{name}_prev")
        self.sel = Signal(range(w), name=f"{name}_sel")
        self.active = Signal(name=f"{name}_active")
        pick = round_robin(m, n, valids, self.prev)
        m.d.comb += [self.sel.eq(Mux(self.locked, self.owner, pick)),
                     self.active.eq(self.locked | (valids.any() & ~hold))]

    def update(self, m, fire, last):
        with m.If(fire):
            with m.If(last):
                m.d.sync += [self.locked.eq(0), self.prev.eq(self.sel)]
            with m.Else():
                m.d.sync += [self.locked.eq(1), self.owner.eq(self.sel)]


class PacketArbiter(wiring.Component):
    """Merges ``n`` streams of one signature into one, a whole packet at a time
    (up to a beat for which ``last(payload)`` is true), round robin, with no
    idle cycle between packets.

    ``hold`` lets the packet in progress finish and then grants nobody (to
    quiesce a path before a reset); ``busy`` is high inside a packet.

    <name_in>__<k>  In(signature), k = 0 .. n-1
    <name_out>      Out(signature)
    hold            In(1)
    busy            Out(1)
    """

    def __init__(self, signature, n, *, last, name_in="i_stream", name_out="o_stream"):
        self._n = n
        self._last = last
        self._names = (name_in, name_out)
        super().__init__({name_in: In(signature).array(n), name_out: Out(signature), "hold": In(1), "busy": Out(1)})

    def inputs(self):
        return list(getattr(self, self._names[0]))

    def output(self):
        return getattr(self, self._names[1])

    def elaborate(self, platform):
        m = Module()
        ins, out = self.inputs(), self.output()
        g = PacketGrant(m, self._n, [i.valid for i in ins], hold=self.hold)
        for k, i in enumerate(ins):
            with m.If(g.active & (g.sel == k)):
                m.d.comb += [out.valid.eq(i.valid), out.payload.eq(i.payload), i.ready.eq(out.ready)]
        g.update(m, out.valid & out.ready, self._last(out.payload))
        m.d.comb += self.busy.eq(g.locked)
        return m


def lowest_set(m, vec, name="lowest"):
    """The index of the lowest set bit of ``vec`` (0 when none is set): a
    tree of two-way choices, so its depth grows with log n (a chain of n
    priority multiplexers would be n deep, and at hundreds of queues too deep
    even for synthesis to analyse)."""
    n = len(vec)
    out = Signal(range(max(n, 2)), name=name)

    def tree(lo, size):
        # (any bit set, index of the lowest within [lo, lo + size)), the index
        # in ceil(log2(size)) bits: the lower part is a power of two, so the
        # upper part's index takes its top bit with no adder.
        if size == 1:
            return vec[lo], None
        half = 1 << ((size - 1).bit_length() - 1)
        a_lo, i_lo = tree(lo, half)
        a_hi, i_hi = tree(lo + half, size - half)
        if i_lo is None:
            return a_lo | a_hi, ~a_lo
        if i_hi is None:
            i_hi = Const(0, len(i_lo))
        return a_lo | a_hi, Cat(Mux(a_lo, i_lo, i_hi), ~a_lo)

    if n == 1:
        m.d.comb += out.eq(0)
    else:
        found, idx = tree(0, n)
        m.d.comb += out.eq(Mux(found, idx, 0))
    return out
