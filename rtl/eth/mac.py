# Ref: IEEE 802.3-2018 §3.1.1 (frame format: preamble, SFD, addresses,
# length/type, data and pad to a minimum of 64 bytes with the FCS, FCS),
# §4.4.2 (interpacket gap: 96 bit times), §4.2.4.2.2 (frames shorter than the
# minimum are fragments and are discarded), §46.3.1.4 (deficit idle count).
"""Ethernet MAC: framing and FCS towards the wire, checking from it.

The wire is a stream of beats (:func:`rtl.streams.bytes_layout`), one frame per
packet, each frame starting in lane 0: the frame's bytes including pad and FCS.
The transmitter paces frames so that the wire carries at most ``data_width / 8``
bytes per cycle counting 8 bytes of preamble/SFD and a 12-byte gap per frame,
like a PHY of that rate; it averages the gap as a deficit idle count does, so
beat boundaries cost no throughput.
"""

from amaranth.lib import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import bytes_layout
from .crc import CrcPipe, FcsCheck

__all__ = ["MIN_FRAME", "WIRE_OVERHEAD", "RxError", "rx_frame_layout", "MacTx", "MacRx"]

#: Shortest frame on the wire, FCS included.
MIN_FRAME = 64
#: Wire bytes per frame besides the frame: preamble and SFD (8), gap (12).
WIRE_OVERHEAD = 20


class RxError(enum.IntEnum):
    OK = 0
    BAD_FCS = 1
    RUNT = 2
    OVERSIZE = 3


def rx_frame_layout(data_width, queue_bits):
    """A received frame without its FCS; on the last beat: how it ended, its
    length and the receive queue its destination address steers it to."""
    return data.StructLayout({
        "data": data_width,
        "nbytes": (data_width // 8).bit_length(),
        "last": 1,
        "error": 2,
        "length": 14,
        "queue": queue_bits,
    })


class MacTx(wiring.Component):
    """Pads frames to 60 bytes, appends the FCS and paces them onto the wire.

    i_frame  In(stream(bytes_layout)): frames, no FCS; a frame must arrive
             without gaps once its first beat has (store-and-forward upstream)
    o_wire   Out(stream(bytes_layout))
    sent     Out(1): one cycle per frame put on the wire
    """

    def __init__(self, data_width):
        self._w = data_width
        super().__init__({
            "i_frame": In(stream.Signature(bytes_layout(data_width))),
            "o_wire": Out(stream.Signature(bytes_layout(data_width))),
            "sent": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, WB = self._w, self._w // 8
        LB = WB.bit_length() - 1
        body = MIN_FRAME - 4

        # Stage 1: frame bytes and pad, each beat's bytes up to the 60-byte body.
        count = Signal(range(body + 1))      # bytes so far, saturating at the minimum body
        padding = Signal()                   # emitting pad beats after a short frame
        s_valid = Signal()
        s = Signal(bytes_layout(W))          # nbytes: the beat's bytes; last: the body ends here

        beat = self.i_frame.payload
        n_in = Mux(padding, 0, beat.nbytes)
        ends_data = padding | beat.last
        total = count + n_in
        eff = Signal(LB + 1)
        with m.If(ends_data & (count < body)):
            # The frame (or its pad) ends in this beat: cover up to the 60-byte body.
            m.d.comb += eff.eq(Mux(body - count > WB, WB, Mux(total > body, n_in, body - count)))
        with m.Else():
            m.d.comb += eff.eq(n_in)
        keep = Cat(*[Mux(j < n_in, Const(0xFF, 8), Const(0, 8)) for j in range(WB)])
        done_body = ends_data & ((count + eff) >= body)

        # The CRC over the body, a pipeline of its own (the partial last beat
        # folds over several stages); stage 2 meets each beat with it.
        m.submodules.crc = crc = CrcPipe(W)
        m.d.comb += [crc.i.valid.eq(s_valid), crc.i.payload.eq(s)]
        have = padding | self.i_frame.valid
        stage_free = ~s_valid | crc.i.ready
        with m.If(have & stage_free):
            m.d.comb += self.i_frame.ready.eq(~padding)
            m.d.sync += [
                s_valid.eq(1), s.data.eq(Mux(padding, 0, beat.data & keep)), s.nbytes.eq(eff), s.last.eq(done_body),
                count.eq(Mux(done_body, 0, Mux(count + eff > body, body, count + eff))),
                padding.eq(ends_data & ~done_body),
            ]
        with m.Elif(crc.i.ready):
            m.d.sync += s_valid.eq(0)

        # Stage 2: the FCS after the last body byte, and the pacing.
        c = crc.o.payload
        c_take = Signal()
        mid = Signal()                       # inside a frame: the next beat is not its first
        fcs = Signal(32)
        m.d.comb += [fcs.eq(~crc.crc), crc.o.ready.eq(c_take)]
        with m.If(c_take):
            m.d.sync += mid.eq(~c.last)
        tail = Signal()                      # the FCS spills into one more beat
        tail_data = Signal(32)
        tail_n = Signal(3)
        debt = Signal(range(-WB - 2 * WIRE_OVERHEAD, 16384))
        out = self.o_wire.payload
        can_start = debt <= 0
        with m.If(tail):
            m.d.comb += [self.o_wire.valid.eq(1), out.data.eq(tail_data), out.nbytes.eq(tail_n), out.last.eq(1)]
            with m.If(self.o_wire.ready):
                m.d.sync += tail.eq(0)
        with m.Elif(crc.o.valid & (mid | can_start)):
            with_fcs = (c.data | (fcs << (c.nbytes << 3)))[:W]
            fits = c.nbytes + 4 <= WB
            m.d.comb += [
                self.o_wire.valid.eq(1),
                out.data.eq(Mux(c.last, with_fcs, c.data)),
                out.nbytes.eq(Mux(c.last, Mux(fits, c.nbytes + 4, WB), c.nbytes)),
                out.last.eq(c.last & fits),
                c_take.eq(self.o_wire.ready),
            ]
            with m.If(self.o_wire.ready & c.last & ~fits):
                m.d.sync += [tail.eq(1), tail_data.eq(fcs >> ((WB - c.nbytes)[:LB + 1] << 3)),
                             tail_n.eq(c.nbytes + 4 - WB)]

        fire = self.o_wire.valid & self.o_wire.ready
        m.d.comb += self.sent.eq(fire & out.last)
        with m.If(fire):
            m.d.sync += debt.eq(debt + out.nbytes + Mux(out.last, WIRE_OVERHEAD, 0) - WB)
        with m.Elif(crc.o.valid & ~mid & ~tail):
            m.d.sync += debt.eq(debt - WB)       # a frame waits for the gap: the debt may go negative
        with m.Else():
            m.d.sync += debt.eq(Mux(debt > WB, debt - WB, 0))
        return m


class MacRx(wiring.Component):
    """Checks frames from the wire and strips their FCS.

    Every frame comes out (so that the receive FIFO can drop it whole), its last
    beat saying whether it was good: a bad FCS, shorter than 64 bytes (runt) or
    longer than ``max_frame`` bytes (oversize). The receive queue is the
    destination address's last byte modulo ``2 ** queue_bits``.

    i_wire   In(stream(bytes_layout)): always ready
    o_frame  Out(stream(rx_frame_layout)): may not stall (the receive FIFO drops);
             ``FcsCheck.latency`` + 1 cycles behind ``i_wire`` (the check, and
             one beat held back to cut the FCS off)
    """

    def __init__(self, data_width, queue_bits, max_frame):
        self._w = data_width
        self._qb = queue_bits
        self._max = max_frame
        super().__init__({
            "i_wire": In(stream.Signature(bytes_layout(data_width))),
            "o_frame": Out(stream.Signature(rx_frame_layout(data_width, queue_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        W, WB = self._w, self._w // 8
        LB = WB.bit_length() - 1
        qb = self._qb
        # The FCS is checked over the cycles after a frame's last beat; the
        # frames reach the logic below that many cycles late, with the result.
        m.submodules.fcs = fcs = FcsCheck(W)
        m.d.comb += [fcs.i.valid.eq(self.i_wire.valid), fcs.i.payload.eq(self.i_wire.payload),
                     self.i_wire.ready.eq(1)]
        beat = fcs.o.payload
        fire = fcs.o.valid

        length = Signal(15)
        in_frame = Signal()
        queue = Signal(max(qb, 1))
        new_len = length + beat.nbytes
        with m.If(fire):
            m.d.sync += [in_frame.eq(~beat.last),
                         length.eq(Mux(beat.last, 0, Mux(new_len > 16383, 16383, new_len)))]
            if qb:
                with m.If(~in_frame):
                    m.d.sync += queue.eq(beat.data[40:40 + qb])

        # One beat is held back, so that the FCS can be cut off when the last
        # beat shows where the frame ends. A held final beat keeps the frame's
        # status in l_*; it leaves when the next beat arrives or in the next cycle.
        held = Signal()
        h = Signal(bytes_layout(W))
        l_err = Signal(2)
        l_len = Signal(14)
        l_q = Signal(max(qb, 1))
        out = self.o_frame.payload
        err = Signal(2)
        m.d.comb += err.eq(Mux(new_len < MIN_FRAME, RxError.RUNT,
                               Mux(new_len > self._max, RxError.OVERSIZE,
                                   Mux(~fcs.ok, RxError.BAD_FCS, RxError.OK))))
        q_now = Mux(in_frame, queue, beat.data[40:40 + qb]) if qb else Const(0, 1)
        strip = (4 - beat.nbytes)[:LB + 1]   # FCS bytes in the held beat when the last beat is short

        def emit_held():
            return [self.o_frame.valid.eq(held), out.data.eq(h.data), out.nbytes.eq(h.nbytes), out.last.eq(h.last),
                    out.error.eq(l_err), out.length.eq(l_len), out.queue.eq(l_q)]

        def latch():
            return [l_err.eq(err), l_len.eq(new_len - 4), l_q.eq(q_now)]

        with m.If(fire & beat.last & (beat.nbytes <= 4) & held & ~h.last):
            # The held beat is this frame's and ends it, less the FCS bytes it holds.
            m.d.comb += [self.o_frame.valid.eq(1), out.data.eq(h.data), out.nbytes.eq(h.nbytes - strip),
                         out.last.eq(1), out.error.eq(err), out.length.eq(new_len - 4), out.queue.eq(q_now)]
            m.d.sync += held.eq(0)
        with m.Elif(fire & beat.last & (beat.nbytes <= 4)):
            # A frame of at most its FCS: only an end marker, after any held final beat.
            with m.If(held):
                m.d.comb += emit_held()
                m.d.sync += [h.nbytes.eq(0), h.last.eq(1), held.eq(1)] + latch()
            with m.Else():
                m.d.comb += [self.o_frame.valid.eq(1), out.nbytes.eq(0), out.last.eq(1), out.error.eq(err),
                             out.length.eq(0), out.queue.eq(q_now)]
        with m.Elif(fire):
            m.d.comb += emit_held()
            m.d.sync += [h.data.eq(beat.data), held.eq(1), h.last.eq(beat.last),
                         h.nbytes.eq(Mux(beat.last, beat.nbytes - 4, beat.nbytes))]
            with m.If(beat.last):
                m.d.sync += latch()
        with m.Elif(held & h.last):
            m.d.comb += emit_held()
            m.d.sync += held.eq(0)
        return m
