"""Stream glue: a FIFO with stream ports, the buffered FIFO under it, and a
register slice."""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect

__all__ = ["StreamFifo", "BufferedFifo", "RegisterSlice", "register_slice"]


class BufferedFifo(wiring.Component):
    """A synchronous FIFO of ``width`` bits and ``depth`` entries with the
    interface of ``amaranth.lib.fifo.SyncFIFOBuffered``, whose storage is a
    memory of the given ``ram_style`` ("block": block RAM even when shallow,
    for wide entries that would otherwise take many distributed-RAM cells).

    The memory is read every cycle at the entry that will be the head on the
    next cycle, so ``r_data`` comes straight from the memory's output register
    and holds while the head waits (no multiplexer, no extra flip-flops for
    it); an entry can be read out two cycles after it was written (the
    memory never returns an entry in the cycle it is written), and the FIFO
    never reads the entry being written (``no_rw_check``: no logic for that
    case). ``r_rdy`` and ``w_rdy`` come from flip-flops.

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
        n = self.depth
        m.submodules.storage = mem = Memory(shape=self.width, depth=n, init=[],
                                            attrs={"ram_style": self._ram_style, "no_rw_check": 1})
        wp = mem.write_port()
        # An asynchronous read port and a register: synthesis folds the
        # register into a block RAM's read port, and, told by ``no_rw_check``,
        # adds nothing for a read of the entry being written (a synchronous
        # read port would ask for the old value then, which a block RAM's
        # separate read and write ports cannot give without extra logic).
        rp = mem.read_port(domain="comb")
        r_data = Signal(self.width)
        m.d.sync += r_data.eq(rp.data)
        wr = Signal(range(n))
        rd = Signal(range(n))
        held = Signal(range(n + 1))
        just = Signal()                     # an entry was written last cycle: not readable yet

        def step(p):
            return Mux(p == n - 1, 0, p + 1)
        write = self.w_en & self.w_rdy
        read = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(held != n), self.r_rdy.eq((held - just) != 0), self.level.eq(held),
                     wp.addr.eq(wr), wp.data.eq(self.w_data), wp.en.eq(write),
                     rp.addr.eq(Mux(read, step(rd), rd)), self.r_data.eq(r_data)]
        m.d.sync += [just.eq(write), held.eq(held + write - read)]
        with m.If(write):
            m.d.sync += wr.eq(step(wr))
        with m.If(read):
            m.d.sync += rd.eq(step(rd))
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


class RegisterSlice(wiring.Component):
    """A register stage on a stream at full throughput. As a skid buffer (the
    default) the output's ``valid`` and payload and the input's ``ready`` all
    come from flip-flops, so no combinational path crosses it in either
    direction; it holds up to two transfers: the output register, and a skid
    register that catches the transfer accepted in the cycle the output
    stalls. With ``skid=False`` it is a forward register: ``valid`` and
    payload from flip-flops, but the input's ``ready`` is the output's
    ``ready`` or an empty output register, combinationally (no multiplexer
    per payload bit): for sinks whose ``ready`` comes from flip-flops. Either
    adds one cycle of latency.

    i_stream  In(stream(layout))
    o_stream  Out(stream(layout))
    """

    def __init__(self, layout, *, skid=True):
        self._skid = skid
        sig = stream.Signature(layout)
        super().__init__({"i_stream": In(sig), "o_stream": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        if not self._skid:
            m.d.comb += i.ready.eq(~o.valid | o.ready)
            with m.If(i.ready):
                m.d.sync += o.valid.eq(i.valid)
                with m.If(i.valid):
                    m.d.sync += o.payload.eq(i.payload)
            return m
        skid = Signal.like(i.payload)
        skid_full = Signal()
        m.d.comb += i.ready.eq(~skid_full)
        with m.If(~o.valid | o.ready):
            # The output register is free (or is emptied this cycle): fill it
            # from the skid register first, else from the input.
            with m.If(skid_full):
                m.d.sync += [o.payload.eq(skid), skid_full.eq(0)]
            with m.Else():
                m.d.sync += [o.payload.eq(i.payload), o.valid.eq(i.valid)]
        with m.Elif(i.valid & ~skid_full):
            m.d.sync += [skid.eq(i.payload), skid_full.eq(1)]
        return m


def register_slice(m, name, source, sink, *, domain_reset=None, skid=True):
    """Put a :class:`RegisterSlice` named ``name`` between the stream port
    ``source`` (an output) and ``sink`` (an input); ``domain_reset`` wraps it
    in a ``ResetInserter`` with that signal; ``skid=False`` makes it a
    forward register. Returns the slice."""
    s = RegisterSlice(source.payload.shape(), skid=skid)
    m.submodules[name] = s if domain_reset is None else ResetInserter(domain_reset)(s)
    connect(m, source, s.i_stream)
    connect(m, s.o_stream, sink)
    return s


def registered_head(m, name, fifo, layout):
    """The head of ``fifo`` (a :class:`BufferedFifo`, whose ``r_data`` comes
    from block RAM) in flip-flops: a forward :class:`RegisterSlice` named
    ``name`` with payload ``layout``, so that what the reader decides from
    the head starts at a register. Returns the slice's output stream (read
    it with ``ready``); it adds a cycle of latency, not of throughput."""
    s = m.submodules[name] = RegisterSlice(layout, skid=False)
    m.d.comb += [s.i_stream.valid.eq(fifo.r_rdy), s.i_stream.payload.eq(fifo.r_data),
                 fifo.r_en.eq(s.i_stream.ready)]
    return s.o_stream
