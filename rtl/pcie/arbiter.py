"""Packet arbiter: merges TLP streams into one, a whole TLP at a time."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .tlp import TlpStream

__all__ = ["TlpArbiter"]


class TlpArbiter(wiring.Component):
    """Round-robin arbiter over ``n`` TLP sources with no idle cycle between packets.

    A source keeps the output from its first beat to its ``eop`` beat. ``hold``
    lets the packet in progress finish and then grants nobody (used to quiesce
    the link before a soft reset); ``busy`` is high while a packet is in progress.

    i_tlp__<k>  In(TlpStream), k = 0 .. n-1
    o_tlp       Out(TlpStream)
    hold        In(1)
    busy        Out(1)
    """

    def __init__(self, data_width, n):
        self._n = n
        members = {f"i_tlp__{k}": In(TlpStream(data_width)) for k in range(n)}
        members.update({"o_tlp": Out(TlpStream(data_width)), "hold": In(1), "busy": Out(1)})
        super().__init__(members)

    def inputs(self):
        return [getattr(self, f"i_tlp__{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        n = self._n
        ins = self.inputs()
        locked = Signal()
        owner = Signal(range(n))
        rr = Signal(range(n))   # first candidate for the next grant

        # Pick the first valid source at or after rr.
        pick = Signal(range(n))
        any_valid = Signal()
        for off in reversed(range(n)):
            for k in range(n):
                with m.If((rr == k) & ins[(k + off) % n].valid):
                    m.d.comb += [pick.eq((k + off) % n), any_valid.eq(1)]

        sel = Signal(range(n))
        active = Signal()
        with m.If(locked):
            m.d.comb += [sel.eq(owner), active.eq(1)]
        with m.Else():
            m.d.comb += [sel.eq(pick), active.eq(any_valid & ~self.hold)]

        for k, i in enumerate(ins):
            with m.If(active & (sel == k)):
                m.d.comb += [
                    self.o_tlp.valid.eq(i.valid),
                    self.o_tlp.payload.eq(i.payload),
                    i.ready.eq(self.o_tlp.ready),
                ]

        with m.If(self.o_tlp.valid & self.o_tlp.ready):
            with m.If(self.o_tlp.payload.eop):
                m.d.sync += [locked.eq(0), rr.eq(Mux(sel == n - 1, 0, sel + 1))]
            with m.Else():
                m.d.sync += [locked.eq(1), owner.eq(sel)]
        m.d.comb += self.busy.eq(locked)
        return m
