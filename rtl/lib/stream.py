"""Stream glue: a FIFO with stream ports."""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFifo"]


class StreamFifo(wiring.Component):
    """A synchronous FIFO between two streams of ``layout``; with
    ``buffered`` (the default) its output ``valid`` and input ``ready`` come
    from flip-flops and its storage is a memory.

    i_stream  In(stream(layout))
    o_stream  Out(stream(layout))
    level     Out: entries held
    """

    def __init__(self, layout, depth, *, buffered=True):
        self._layout = layout
        self._depth = depth
        self._buffered = buffered
        sig = stream.Signature(layout)
        super().__init__({"i_stream": In(sig), "o_stream": Out(sig), "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        width = len(self.i_stream.payload.as_value())
        cls = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
        f = m.submodules.fifo = cls(width=width, depth=self._depth)
        m.d.comb += [
            f.w_data.eq(self.i_stream.payload), f.w_en.eq(self.i_stream.valid), self.i_stream.ready.eq(f.w_rdy),
            self.o_stream.payload.eq(f.r_data), self.o_stream.valid.eq(f.r_rdy), f.r_en.eq(self.o_stream.ready),
            self.level.eq(f.level),
        ]
        return m
