# Ref: IEEE 802.3-2018 §3.2.9 (Frame Check Sequence): CRC-32 with generator
# 0x04C11DB7, bits sent least significant first (hence the reflected form
# 0xEDB88320), register preset to all ones, complement transmitted.
"""CRC-32 over a beat of bytes per cycle.

The CRC is linear in (register, data), so each update is a fixed XOR matrix,
computed here in Python from the bit-serial definition. A full beat uses one
matrix; a short beat of ``n`` bytes is folded in by the chunks of ``n``'s binary
expansion (16, 8, 4, 2, 1 bytes), each with its own small matrix.
"""

from functools import lru_cache

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import bytes_layout

__all__ = ["POLY", "INIT", "RESIDUE", "crc32_bytes", "crc32_update", "crc32_beat", "fcs", "FcsCheck"]

POLY = 0xEDB88320
INIT = 0xFFFF_FFFF
#: Register value after running the CRC over a frame and its own FCS.
RESIDUE = 0xDEBB20E3


def crc32_bytes(crc, data):
    """Bit-serial reference: the register after ``data`` (no pre/post inversion)."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY if crc & 1 else 0)
    return crc


def fcs(frame):
    """The FCS of ``frame`` as it is sent (four bytes, first byte first)."""
    return (crc32_bytes(INIT, frame) ^ 0xFFFF_FFFF).to_bytes(4, "little")


@lru_cache(maxsize=None)
def _matrix(nbytes):
    """For each register output bit, the mask of input bits (32 register bits,
    then 8 * nbytes data bits, LSB first) whose XOR gives it."""
    rows = [0] * 32
    for j in range(32 + 8 * nbytes):
        if j < 32:
            out = crc32_bytes(1 << j, bytes(nbytes))
        else:
            d = (1 << (j - 32)).to_bytes(nbytes, "little")
            out = crc32_bytes(0, d)
        for i in range(32):
            if out >> i & 1:
                rows[i] |= 1 << j
    return tuple(rows)


def crc32_update(crc, data, nbytes):
    """Amaranth expression: the register after ``nbytes`` (a constant) bytes of
    ``data`` (byte 0 in bits 7:0)."""
    x = Cat(crc, data[:8 * nbytes])
    bits = []
    for mask in _matrix(nbytes):
        terms = [x[j] for j in range(32 + 8 * nbytes) if mask >> j & 1]
        bits.append(Cat(*terms).xor() if terms else Const(0, 1))
    return Cat(*bits)


def crc32_beat(m, crc, data, nbytes, beat_bytes):
    """The register after the first ``nbytes`` (a signal, 0 .. beat_bytes) bytes
    of ``data``; drives and returns a 32-bit signal."""
    out = Signal(32)
    lb = beat_bytes.bit_length() - 1
    cur = crc
    for k in reversed(range(lb)):
        size = 1 << k
        off = Signal(lb + 1, name=f"crc_off{size}")
        m.d.comb += off.eq((nbytes >> (k + 1)) << (k + 1))
        chunk = Signal(8 * size, name=f"crc_chunk{size}")
        m.d.comb += chunk.eq(data.bit_select(off << 3, 8 * size) if lb else data)
        step = Signal(32, name=f"crc_step{size}")
        m.d.comb += step.eq(Mux(nbytes[k], crc32_update(cur, chunk, size), cur))
        cur = step
    m.d.comb += out.eq(Mux(nbytes == beat_bytes, crc32_update(crc, data, beat_bytes), cur))
    return out


class FcsCheck(wiring.Component):
    """Checks each frame's FCS over several cycles, with the frames delayed to
    match: ``o`` is ``i`` ``latency`` cycles later, and on each of its last
    beats ``ok`` says whether the frame, FCS included, left the CRC register
    at :data:`RESIDUE`.

    Only a frame's last beat may be short, so the running CRC folds whole
    beats (one matrix) and restarts after a last beat. A last beat is taken
    into a pipeline with the register before it, and each stage folds one
    chunk of a short beat (the bytes of ``nbytes``'s binary expansion,
    largest first, each chunk picked out one stage ahead), so no stage has
    more than one fold; the running fold of the whole beat is carried
    alongside for a beat that is whole.

    i        In(stream(bytes_layout)): always ready, and may not stall
    o        Out(stream(bytes_layout)): the same beats, ``latency`` cycles later
    ok       Out(1): with ``o``'s last beat
    latency  cycles from ``i`` to ``o``
    """

    def __init__(self, data_width):
        if data_width < 16 or data_width & (data_width - 1):
            raise ValueError(f"FcsCheck needs a power-of-two width of at least 16 bits, not {data_width}")
        self._w = data_width
        self._lb = (data_width // 8).bit_length() - 1
        self.latency = self._lb + 2
        sig = stream.Signature(bytes_layout(data_width))
        super().__init__({"i": In(sig), "o": Out(sig), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        W, WB, LB = self._w, self._w // 8, self._lb
        beat = self.i.payload
        m.d.comb += self.i.ready.eq(1)

        crc = Signal(32, init=INIT)
        folded = Signal(32, name="fcs_folded")          # the register after this beat, taken whole
        m.d.comb += folded.eq(crc32_update(crc, beat.data, WB))
        with m.If(self.i.valid):
            m.d.sync += crc.eq(Mux(beat.last, INIT, folded))

        # Stage 0: the register before the beat, whether the beat is whole,
        # and each chunk of a short beat, picked out by where it starts.
        sizes = [1 << k for k in reversed(range(LB))]           # chunk sizes, largest first
        st_crc = Signal(32, name="fcs_s0_crc")
        st_full = Signal(name="fcs_s0_full")
        st_n = Signal(LB + 1, name="fcs_s0_n")
        chunks = [Signal(8 * size, name=f"fcs_s0_chunk{size}") for size in sizes]
        m.d.sync += [st_crc.eq(crc), st_full.eq(beat.nbytes == WB), st_n.eq(beat.nbytes)]
        for k, (size, chunk) in enumerate(zip(sizes, chunks)):
            bit = LB - 1 - k
            off = (beat.nbytes >> (bit + 1)) << (bit + 1)
            m.d.sync += chunk.eq(beat.data.bit_select(off << 3, 8 * size))
        whole = Signal(32, name="fcs_s0_whole")
        m.d.sync += whole.eq(folded)

        # Stages 1 .. LB fold one chunk each; the whole beat's fold is carried.
        cur, full, n, rest = st_crc, st_full, st_n, chunks
        for k, size in enumerate(sizes):
            bit = LB - 1 - k
            nxt = Signal(32, name=f"fcs_s{k + 1}_crc")
            m.d.sync += nxt.eq(Mux(n[bit], crc32_update(cur, rest[0], size), cur))
            n_q = Signal(LB + 1, name=f"fcs_s{k + 1}_n")
            full_q = Signal(name=f"fcs_s{k + 1}_full")
            m.d.sync += [n_q.eq(n), full_q.eq(full)]
            later = []
            for c in rest[1:]:
                c_q = Signal(len(c), name=f"{c.name}_s{k + 1}")
                m.d.sync += c_q.eq(c)
                later.append(c_q)
            cur, n, full, rest = nxt, n_q, full_q, later
        for k in range(LB):
            w_q = Signal(32, name=f"fcs_whole_s{k + 1}")
            m.d.sync += w_q.eq(whole)
            whole = w_q
        ok = Signal()
        m.d.sync += ok.eq(Mux(full, whole, cur) == RESIDUE)
        m.d.comb += self.ok.eq(ok)

        # The beats, delayed to meet their result.
        v, p = self.i.valid, beat
        for k in range(self.latency):
            v_q = Signal(name=f"fcs_d{k}_valid")
            p_q = Signal(bytes_layout(W), name=f"fcs_d{k}")
            m.d.sync += [v_q.eq(v), p_q.eq(p)]
            v, p = v_q, p_q
        m.d.comb += [self.o.valid.eq(v), self.o.payload.eq(p)]
        return m
