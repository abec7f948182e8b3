"""Store-and-forward packet FIFO: a packet becomes visible only once its last
beat has arrived and it was not dropped; a dropped packet leaves no trace."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .streams import bytes_layout
from .lib.stream import BufferedFifo

__all__ = ["PacketFifo"]


class PacketFifo(wiring.Component):
    """
    i_pkt    In(stream): packet beats; on the last beat ``drop`` discards the
             packet and ``meta`` describes it
    o_pkt    Out(stream(bytes_layout)): beats of committed packets
    o_meta   Out(stream(meta)): one entry per committed packet, ahead of its beats
    stall    In(1): when full, hold the input (a packet must then fit in the
             FIFO) instead of dropping the packet
    overflow Out(1): a packet was dropped because it did not fit
    level    Out: beats stored

    depth is in beats.
    """

    def __init__(self, data_width, depth, meta_layout, *, meta_depth=64):
        self._w = data_width
        self._depth = depth
        self._meta = data.StructLayout(meta_layout) if isinstance(meta_layout, dict) else meta_layout
        self._meta_depth = meta_depth
        in_layout = data.StructLayout({"data": data_width, "nbytes": (data_width // 8).bit_length(), "last": 1,
                                       "drop": 1, "meta": self._meta})
        super().__init__({
            "i_pkt": In(stream.Signature(in_layout)),
            "o_pkt": Out(stream.Signature(bytes_layout(data_width))),
            "o_meta": Out(stream.Signature(self._meta)),
            "stall": In(1),
            "overflow": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        D = self._depth
        AB = (D - 1).bit_length()
        beat_l = bytes_layout(self._w)
        mem = m.submodules.mem = Memory(shape=beat_l, depth=D, init=[])
        wp_ = mem.write_port()
        rp_ = mem.read_port()
        meta = m.submodules.meta = fifo.SyncFIFOBuffered(width=self._meta.size, depth=self._meta_depth)

        wp = Signal(AB + 1)     # next write
        cp = Signal(AB + 1)     # end of the committed packets
        rp = Signal(AB + 1)     # next read
        dropping = Signal()     # the rest of an overflowing packet is thrown away
        full = (wp - rp)[:AB + 1] == D
        m.d.comb += self.level.eq((wp - rp)[:AB + 1])

        i = self.i_pkt.payload
        m.d.comb += self.i_pkt.ready.eq(~self.stall | (~full & meta.w_rdy))
        fire = self.i_pkt.valid & self.i_pkt.ready
        space = ~full & meta.w_rdy
        with m.If(fire):
            with m.If(dropping | ~space):
                # No room (or already dropping): forget the packet.
                m.d.sync += [wp.eq(cp), dropping.eq(~i.last)]
                with m.If(~dropping):
                    m.d.comb += self.overflow.eq(1)
            with m.Else():
                m.d.comb += [wp_.addr.eq(wp[:AB]), wp_.data.data.eq(i.data), wp_.data.nbytes.eq(i.nbytes),
                             wp_.data.last.eq(i.last), wp_.en.eq(1)]
                with m.If(i.last):
                    with m.If(i.drop):
                        m.d.sync += wp.eq(cp)
                    with m.Else():
                        m.d.sync += [wp.eq(wp + 1), cp.eq(wp + 1)]
                        m.d.comb += [meta.w_en.eq(1), meta.w_data.eq(i.meta)]
                with m.Else():
                    m.d.sync += wp.eq(wp + 1)

        # Read side: committed beats, through a small FIFO for the RAM's latency.
        out = m.submodules.out = BufferedFifo(width=beat_l.size, depth=4)
        p_valid = Signal()
        go = (rp != cp) & ((out.level + p_valid) < out.depth)
        m.d.comb += rp_.addr.eq(rp[:AB])
        m.d.sync += p_valid.eq(go)
        with m.If(go):
            m.d.sync += rp.eq(rp + 1)
        m.d.comb += [
            out.w_en.eq(p_valid), out.w_data.eq(rp_.data),
            self.o_pkt.valid.eq(out.r_rdy), self.o_pkt.payload.eq(out.r_data), out.r_en.eq(self.o_pkt.ready),
            self.o_meta.valid.eq(meta.r_rdy), self.o_meta.payload.eq(meta.r_data), meta.r_en.eq(self.o_meta.ready),
        ]
        return m
