"""TLPs between Python and the NIC a chunk at a time, not a beat at a time.

A PCIe model that drives the NIC's TLP streams beat by beat has to run Python
on every clock edge while a TLP moves (a 256-byte completion is 32 edges at
64 bits). ``TlpChunkBridge`` sits in the simulation tops between the model and
the NIC's ports and moves whole chunks instead: up to ``CHUNK_BYTES`` of one
TLP (its header, payload, and whether it starts or ends the TLP) in one wide
port, so Python runs once per chunk.

Host to NIC, a FIFO of chunks turned into beats (full beats, the last one
partial, ``sop`` on the TLP's first beat and ``eop`` on its last); NIC to host,
beats gathered into a chunk that ends at ``eop`` or when it is full. Neither
way adds a cycle: an empty FIFO is bypassed, and a chunk is offered in the
cycle of its last beat, so the NIC sees the same timing as from a model that
drives its beats one by one. The gatherer checks the
stream rules the Python model checks in beat mode and keeps a sticky bit for
each it saw broken (``VIOLATIONS``).

Never synthesised: only the simulation tops use it.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtl.pcie.tlp import TlpHeader, TlpStream

__all__ = ["CHUNK_BYTES", "VIOLATIONS", "chunk_layout", "ChunkCodec", "TlpChunkBridge"]

#: Payload bytes per chunk: MPS as the testbenches program it by default.
CHUNK_BYTES = 256
#: The sticky bits of ``violations``, in bit order.
VIOLATIONS = ("valid fell or the beat changed before it was taken", "sop inside a TLP", "beat without sop",
              "a beat before the last with fewer bytes than the datapath")
#: Host-to-NIC chunks waiting in the bridge.
H2D_DEPTH = 4


def chunk_layout(chunk_bytes=CHUNK_BYTES):
    return data.StructLayout({
        "hdr": TlpHeader,
        "data": unsigned(8 * chunk_bytes),
        "nbytes": unsigned(chunk_bytes.bit_length()),
        "sop": 1,
        "eop": 1,
        "bar": 3,
    })


class ChunkCodec:
    """Packs and unpacks chunks with ``chunk_layout``."""

    def __init__(self, chunk_bytes=CHUNK_BYTES):
        layout = chunk_layout(chunk_bytes)
        self.width = layout.size
        self.chunk_bytes = chunk_bytes
        off = {name: f.offset for name, f in layout}
        self.o_data, self.o_nbytes = off["data"], off["nbytes"]
        self.o_sop, self.o_eop, self.o_bar = off["sop"], off["eop"], off["bar"]
        self.m_nbytes = (1 << layout["nbytes"].width) - 1
        self.m_data = (1 << 8 * chunk_bytes) - 1

    def chunks(self, hdr, payload=b"", bar=0):
        """The chunks of one TLP (a header-only TLP is one chunk with no bytes)."""
        cb, n = self.chunk_bytes, len(payload)
        out = []
        for i in range(0, max(n, 1), cb):
            piece = payload[i:i + cb]
            out.append(hdr | (int.from_bytes(piece, "little") << self.o_data) | (len(piece) << self.o_nbytes)
                       | (int(i == 0) << self.o_sop) | (int(i + cb >= n) << self.o_eop) | (bar << self.o_bar))
        return out

    def hdr_of(self, v):
        return v & ((1 << 128) - 1)

    def unpack(self, v):
        """``(hdr, payload bytes, sop, eop)`` of a chunk."""
        n = (v >> self.o_nbytes) & self.m_nbytes
        payload = ((v >> self.o_data) & self.m_data).to_bytes(self.chunk_bytes, "little")[:n]
        return self.hdr_of(v), payload, (v >> self.o_sop) & 1, (v >> self.o_eop) & 1


class TlpChunkBridge(wiring.Component):
    """``h2d`` chunks to beats on ``to_nic``; beats from ``from_nic`` to ``d2h`` chunks."""

    def __init__(self, data_width, chunk_bytes=CHUNK_BYTES):
        if (8 * chunk_bytes) % data_width:
            raise ValueError(f"a chunk of {chunk_bytes} B is not a whole number of {data_width}-bit beats")
        self.data_width = data_width
        self.chunk_bytes = chunk_bytes
        layout = chunk_layout(chunk_bytes)
        super().__init__({
            "h2d": In(stream.Signature(layout)),
            "d2h": Out(stream.Signature(layout)),
            "to_nic": Out(TlpStream(data_width)),
            "from_nic": In(TlpStream(data_width)),
            "violations": Out(len(VIOLATIONS)),
        })

    def elaborate(self, platform):
        m = Module()
        W, bb = self.data_width, self.data_width // 8
        words = 8 * self.chunk_bytes // W
        layout = chunk_layout(self.chunk_bytes)

        # Host to NIC: a chunk FIFO, its head sent a beat at a time. An empty
        # FIFO is bypassed: a chunk's first beat reaches the NIC in the cycle
        # it is offered, as it would from the beat-by-beat model.
        m.submodules.fifo = fifo = SyncFIFO(width=layout.size, depth=H2D_DEPTH)
        head = data.View(layout, Mux(fifo.r_rdy, fifo.r_data, self.h2d.payload.as_value()))
        idx = Signal(range(words))
        rem = Signal(range(-bb * words, self.chunk_bytes + 1))
        last = Signal()
        out = self.to_nic.payload
        sent = self.to_nic.valid & self.to_nic.ready
        m.d.comb += [
            rem.eq(head.nbytes - idx * bb),
            last.eq(rem <= bb),
            self.to_nic.valid.eq(fifo.r_rdy | self.h2d.valid),
            out.hdr.eq(head.hdr),
            out.data.eq(head.data.word_select(idx, W)),
            out.nbytes.eq(Mux(last, rem, bb)),
            out.sop.eq(head.sop & (idx == 0)),
            out.eop.eq(head.eop & last),
            out.bar.eq(head.bar),
            self.h2d.ready.eq(fifo.w_rdy),
            fifo.w_data.eq(self.h2d.payload),
            # Through the FIFO unless it was empty and the chunk's only beat went.
            fifo.w_en.eq(self.h2d.valid & (fifo.r_rdy | ~(sent & last))),
            fifo.r_en.eq(fifo.r_rdy & sent & last),
        ]
        with m.If(sent):
            m.d.sync += idx.eq(Mux(last, 0, idx + 1))

        # NIC to host: beats gathered into a chunk, which is offered in the
        # cycle of its last beat (so Python sees a TLP end when it ends).
        beat = self.from_nic.payload
        acc = Signal(layout)
        widx = Signal(range(words))
        res = self.d2h.payload
        first = widx == 0
        ends = beat.eop | (widx == words - 1)
        m.d.comb += [
            self.d2h.valid.eq(self.from_nic.valid & ends),
            self.from_nic.ready.eq(~ends | self.d2h.ready),
            res.hdr.eq(Mux(first, beat.hdr, acc.hdr)),
            res.data.eq(acc.data | (beat.data << (widx * W))),
            res.nbytes.eq(Mux(first, 0, acc.nbytes) + beat.nbytes),
            res.sop.eq(Mux(first, beat.sop, acc.sop)),
            res.eop.eq(beat.eop),
        ]
        take = self.from_nic.valid & self.from_nic.ready
        with m.If(take):
            with m.If(ends):
                m.d.sync += [acc.data.eq(0), widx.eq(0)]
            with m.Else():
                m.d.sync += [acc.hdr.eq(res.hdr), acc.sop.eq(res.sop), acc.data.eq(res.data),
                             acc.nbytes.eq(res.nbytes), widx.eq(widx + 1)]

        # The stream rules, as sticky bits.
        in_tlp = Signal()
        waiting = Signal()
        held = Signal.like(beat)
        bad = Signal(len(VIOLATIONS))
        m.d.sync += [waiting.eq(self.from_nic.valid & ~self.from_nic.ready), held.eq(beat)]
        m.d.comb += [
            bad[0].eq(waiting & (~self.from_nic.valid | (beat.as_value() != held.as_value()))),
            bad[1].eq(take & beat.sop & in_tlp),
            bad[2].eq(take & ~beat.sop & ~in_tlp),
            bad[3].eq(take & ~beat.eop & (beat.nbytes != bb)),
        ]
        with m.If(take):
            m.d.sync += in_tlp.eq(~beat.eop)
        m.d.sync += self.violations.eq(self.violations | bad)
        return m
