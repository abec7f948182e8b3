"""A small FIFO in flip-flops whose head and the entry after it are both
visible, and that says whether any entry holds a given key: for records of
work in flight that a pipeline reads ahead of (memory look-ups for the next
entry are issued as the head leaves)."""

from amaranth.hdl import Array, Cat, Const, Mux, Signal
from amaranth.lib import data

__all__ = ["PeekFifo"]


class PeekFifo:
    """``depth`` entries of ``layout``, built into module ``m``.

    w_en, w_data  push (only while ``w_rdy``)
    r_en          pop the head (only while ``r_rdy``)
    head, next    the head entry and the one after it
    """

    def __init__(self, m, layout, depth, name):
        self.layout = data.Layout.cast(layout)
        self.depth = depth
        entries = [Signal(self.layout, name=f"{name}{i}") for i in range(depth)]
        self._entries = entries
        self._valid = valid = Signal(depth, name=f"{name}_valid")
        wr = Signal(range(depth), name=f"{name}_wr")
        rd = Signal(range(depth), name=f"{name}_rd")
        self.level = Signal(range(depth + 1), name=f"{name}_level")
        self.w_en = Signal(name=f"{name}_w_en")
        self.r_en = Signal(name=f"{name}_r_en")
        self.w_data = Signal(self.layout, name=f"{name}_w_data")
        self.w_rdy = self.level < depth
        self.r_rdy = self.level != 0

        def step(p):
            return Mux(p == depth - 1, 0, p + 1)
        self.head = Array(entries)[rd]
        self.next = Array(entries)[step(rd)]
        with m.If(self.w_en):
            for i in range(depth):
                with m.If(wr == i):
                    m.d.sync += entries[i].eq(self.w_data)
            m.d.sync += wr.eq(step(wr))
        with m.If(self.r_en):
            m.d.sync += rd.eq(step(rd))
        m.d.sync += self.level.eq(self.level + self.w_en - self.r_en)
        set_mask = Mux(self.w_en, (Const(1, depth) << wr)[:depth], 0)
        clr_mask = Mux(self.r_en, (Const(1, depth) << rd)[:depth], 0)
        m.d.sync += valid.eq((valid & ~clr_mask) | set_mask)

    def has(self, field, key):
        """Some entry's ``field`` equals ``key``."""
        return Cat(*[self._valid[i] & (getattr(self._entries[i], field) == key)
                     for i in range(self.depth)]).any()
