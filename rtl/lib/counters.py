"""Event counters in a memory (a statistics collector).

Each counter keeps a small pending count in flip-flops; a sweep visits one
counter per cycle and adds its pending count into the 32-bit value in the
memory, so that a counter is visited every ``n`` cycles and its pending count
never exceeds ``n``. A read adds the pending count of that moment, so it is
exact. The pulses are registered on the way in (so that no event's logic
reaches the counters in its own cycle) and a read adds the registered pulse
too, so it still covers every event before its cycle; a clear drops the
events of the cycle before it and counts those of its own. Values saturate
at 2**32 - 1. ``clear`` zeroes every counter at once:
the memory entries are marked stale (read as 0) until the sweep rewrites them.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from .ram import block_memory, sync_read
from amaranth.lib.wiring import In, Out

__all__ = ["CounterTable"]


class CounterTable(wiring.Component):
    """
    inc     In(n): one count for each counter whose bit is high this cycle
    clear   In(1): zero every counter
    r_stb   In(1), r_addr In: read counter ``r_addr``; ``r_data`` holds it on the next cycle
    r_data  Out(32)
    """

    def __init__(self, n):
        if n < 2:
            raise ValueError(f"a counter table needs at least 2 counters, not {n}")
        self._n = n
        super().__init__({"inc": In(n), "clear": In(1), "r_stb": In(1), "r_addr": In(range(n)),
                          "r_data": Out(32)})

    def elaborate(self, platform):
        m = Module()
        n = self._n
        P = n.bit_length() + 1
        pend = [Signal(P, name=f"pend{k}") for k in range(n)]
        inc = Signal(n)
        m.d.sync += inc.eq(self.inc)
        stale = Signal(n, init=(1 << n) - 1)       # after reset too: a memory keeps its contents
        # Block RAM: the sweep reads the counter after the one it writes, and a
        # read of the counter being written takes the sweep's new value (so no
        # reader needs the memory's value in the cycle it is written).
        m.submodules.mem = mem = block_memory(shape=32, depth=n)
        wp = mem.write_port()

        # The sweep: counter ``i`` is read this cycle, counter ``j`` (read last
        # cycle) gets its pending count added.
        i = Signal(range(n))
        j = Signal(range(n))
        m.d.sync += [i.eq(Mux(i == n - 1, 0, i + 1)), j.eq(i)]
        snap = Signal(P)
        total = Signal(33)
        swept = sync_read(m, mem, i, name="swept")
        m.d.comb += [snap.eq(Array(pend)[j]),
                     total.eq(Mux(stale.bit_select(j, 1), 0, swept) + snap),
                     wp.addr.eq(j), wp.data.eq(Mux(total[32], 0xFFFF_FFFF, total[:32])), wp.en.eq(~self.clear)]
        with m.If(self.clear):
            m.d.sync += stale.eq(-1)
        with m.Else():
            m.d.sync += stale.bit_select(j, 1).eq(0)
        # The counter swept this cycle hands its whole pending count over and
        # starts again from this cycle's event (no subtraction).
        for k in range(n):
            with m.If(self.clear):
                m.d.sync += pend[k].eq(0)
            with m.Elif(j == k):
                m.d.sync += pend[k].eq(inc[k])
            with m.Else():
                m.d.sync += pend[k].eq(pend[k] + inc[k])

        # Reads: the memory's value (unless stale) plus the pending count, both of the read's cycle.
        # The registered pulse of the counter read (last cycle's event, not
        # yet in its pending count) is added too.
        r_pend = Signal(P)
        r_inc = Signal()
        r_stale = Signal()
        r_swept = Signal()
        r_total = Signal(33)
        bus = sync_read(m, mem, self.r_addr, en=self.r_stb, name="bus")
        with m.If(self.r_stb):
            m.d.sync += [r_pend.eq(Array(pend)[self.r_addr]), r_stale.eq(stale.bit_select(self.r_addr, 1)),
                         r_swept.eq(~self.clear & (self.r_addr == j)), r_total.eq(total),
                         r_inc.eq(inc.bit_select(self.r_addr, 1))]
        value = Signal(34)
        m.d.comb += [value.eq(Mux(r_swept, r_total, Mux(r_stale, 0, bus) + r_pend) + r_inc),
                     self.r_data.eq(Mux(value[32:] != 0, 0xFFFF_FFFF, value[:32]))]
        return m
