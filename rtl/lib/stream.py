"""Stream glue: a FIFO with stream ports, and the buffered FIFO under it."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFifo", "BufferedFifo"]


class BufferedFifo(wiring.Component):
    """A synchronous FIFO of ``width`` bits and ``depth`` entries with the
    interface of ``amaranth.lib.fifo.SyncFIFOBuffered`` (``r_data`` and
    ``r_rdy`` from flip-flops), whose storage is a memory of the given
    ``ram_style`` ("block": block RAM even when shallow, for wide entries that
    would otherwise take many distributed-RAM cells; "distributed").

    w_en, w_data, w_rdy  write side
    r_en, r_data, r_rdy  read side
    level                entries held
    """

    def __init__(self, *, width, depth, ram_style="block"):
        if depth < 2:
            raise ValueError(f"a buffered FIFO needs a depth of at least 2, not {depth}")
        self.width = width
        self.depth = depth
        self._ram_style = ram_style
        super().__init__({
            "w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
            "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        inner = self.depth - 1              # the memory; the output register holds one more
        m.submodules.storage = mem = Memory(shape=self.width, depth=inner, init=[],
                                            attrs={"ram_style": self._ram_style})
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")
        wr = Signal(range(inner))
        rd = Signal(range(inner))
        held = Signal(range(inner + 1))     # entries in the memory
        write = self.w_en & self.w_rdy
        # The memory is read whenever it has an entry and the output register
        # is empty or being emptied; the read lands in the register.
        fill = (held != 0) & (~self.r_rdy | self.r_en)

        def step(p):
            return Mux(p == inner - 1, 0, p + 1)

        m.d.comb += [self.w_rdy.eq(held != inner), wp.addr.eq(wr), wp.data.eq(self.w_data), wp.en.eq(write),
                     rp.addr.eq(rd), rp.en.eq(fill), self.r_data.eq(rp.data), self.level.eq(held + self.r_rdy)]
        with m.If(write):
            m.d.sync += wr.eq(step(wr))
        with m.If(fill):
            m.d.sync += [rd.eq(step(rd)), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(write & ~fill):
            m.d.sync += held.eq(held + 1)
        with m.Elif(fill & ~write):
            m.d.sync += held.eq(held - 1)
        return m


class StreamFifo(wiring.Component):
    """A synchronous FIFO between two streams of ``layout``; with
    ``buffered`` (the default) its output ``valid`` and input ``ready`` come
    from flip-flops and its storage is a memory (block RAM with
    ``ram_style="block"``).

    i_stream  In(stream(layout))
    o_stream  Out(stream(layout))
    level     Out: entries held
    """

    def __init__(self, layout, depth, *, buffered=True, ram_style=None):
        self._layout = layout
        self._depth = depth
        self._buffered = buffered
        self._ram_style = ram_style
        sig = stream.Signature(layout)
        super().__init__({"i_stream": In(sig), "o_stream": Out(sig), "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        width = len(self.i_stream.payload.as_value())
        if self._ram_style is not None:
            f = m.submodules.fifo = BufferedFifo(width=width, depth=self._depth, ram_style=self._ram_style)
        else:
            cls = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
            f = m.submodules.fifo = cls(width=width, depth=self._depth)
        m.d.comb += [
            f.w_data.eq(self.i_stream.payload), f.w_en.eq(self.i_stream.valid), self.i_stream.ready.eq(f.w_rdy),
            self.o_stream.payload.eq(f.r_data), self.o_stream.valid.eq(f.r_rdy), f.r_en.eq(self.o_stream.ready),
            self.level.eq(f.level),
        ]
        return m
