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

__all__ = ["POLY", "INIT", "RESIDUE", "crc32_bytes", "crc32_update", "fcs", "CrcPipe", "FcsCheck"]

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


class CrcPipe(wiring.Component):
    """The CRC of each frame over several cycles, with the frames delayed to
    match: ``o`` is ``i`` ``latency`` advances later, and with each of its
    last beats ``crc`` is the register after the frame (no inversion) and
    ``residue`` whether that is :data:`RESIDUE` (the frame ended in its own
    FCS).

    Only a frame's last beat may be short, so the running CRC folds whole
    beats (one matrix, the only loop) and restarts after a last beat. A last
    beat is taken into a pipeline with the register before it, and each stage
    folds one chunk of a short beat (the bytes of ``nbytes``'s binary
    expansion, largest first, each chunk picked out one stage ahead), so no
    stage has more than one fold; the running fold of the whole beat is
    carried alongside for a beat that is whole.

    The pipeline advances as one: every stage moves when its last stage is
    empty or taken (``i.ready``), so a stalled output holds every beat in it.

    i        In(stream(bytes_layout))
    o        Out(stream(bytes_layout)): the same beats, ``latency`` advances later
    crc      Out(32): with ``o``'s last beat
    residue  Out(1): with ``o``'s last beat
    latency  stages from ``i`` to ``o``
    """

    def __init__(self, data_width):
        if data_width < 16 or data_width & (data_width - 1):
            raise ValueError(f"the CRC pipeline needs a power-of-two width of at least 16 bits, not {data_width}")
        self._w = data_width
        self._lb = (data_width // 8).bit_length() - 1
        self.latency = self.stages(data_width)
        sig = stream.Signature(bytes_layout(data_width))
        super().__init__({"i": In(sig), "o": Out(sig), "crc": Out(32), "residue": Out(1)})

    @staticmethod
    def stages(data_width):
        """The pipeline's latency at ``data_width``: a stage to pick the
        chunks, one per chunk size, one for the result."""
        return (data_width // 8).bit_length() + 1

    def elaborate(self, platform):
        m = Module()
        W, WB, LB = self._w, self._w // 8, self._lb
        beat = self.i.payload
        adv = Signal(name="crc_adv")
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready), self.i.ready.eq(adv)]

        crc = Signal(32, init=INIT)
        folded = Signal(32, name="crc_folded")          # the register after this beat, taken whole
        m.d.comb += folded.eq(crc32_update(crc, beat.data, WB))
        with m.If(self.i.valid & adv):
            m.d.sync += crc.eq(Mux(beat.last, INIT, folded))

        staged = []                                     # (register, value) pairs that move on adv

        def stage(value, name):
            reg = Signal(len(value), name=name)
            staged.append(reg.eq(value))
            return reg

        # Stage 0: the register before the beat, whether the beat is whole,
        # and each chunk of a short beat, picked out by where it starts.
        sizes = [1 << k for k in reversed(range(LB))]           # chunk sizes, largest first
        cur = stage(crc, "crc_s0")
        full = stage(beat.nbytes == WB, "crc_s0_full")
        n = stage(beat.nbytes, "crc_s0_n")
        rest = []
        for k, size in enumerate(sizes):
            bit = LB - 1 - k
            off = (beat.nbytes >> (bit + 1)) << (bit + 1)
            rest.append(stage(beat.data.bit_select(off << 3, 8 * size), f"crc_s0_chunk{size}"))
        whole = stage(folded, "crc_s0_whole")

        # Stages 1 .. LB fold one chunk each; the whole beat's fold is carried.
        for k, size in enumerate(sizes):
            bit = LB - 1 - k
            nxt = stage(Mux(n[bit], crc32_update(cur, rest[0], size), cur), f"crc_s{k + 1}")
            n, full = stage(n, f"crc_s{k + 1}_n"), stage(full, f"crc_s{k + 1}_full")
            rest = [stage(c, f"{c.name}_s{k + 1}") for c in rest[1:]]
            whole = stage(whole, f"crc_whole_s{k + 1}")
            cur = nxt
        result = Mux(full, whole, cur)
        m.d.comb += [self.crc.eq(stage(result, "crc_out")), self.residue.eq(stage(result == RESIDUE, "crc_ok"))]

        # The beats, delayed to meet their result.
        v, p = self.i.valid, beat
        for k in range(self.latency):
            p_q = Signal(bytes_layout(W), name=f"crc_d{k}")
            staged.append(p_q.eq(p))
            v, p = stage(v, f"crc_d{k}_valid"), p_q
        m.d.comb += [self.o.valid.eq(v), self.o.payload.eq(p)]
        with m.If(adv):
            m.d.sync += staged
        return m


class FcsCheck(wiring.Component):
    """Checks each frame's FCS over several cycles, with the frames delayed to
    match: ``o`` is ``i`` ``latency`` cycles later, and on each of its last
    beats ``ok`` says whether the frame, FCS included, left the CRC register
    at :data:`RESIDUE` (a :class:`CrcPipe` that never stalls).

    i        In(stream(bytes_layout)): always ready, and may not stall
    o        Out(stream(bytes_layout)): the same beats, ``latency`` cycles later
    ok       Out(1): with ``o``'s last beat
    latency  cycles from ``i`` to ``o``
    """

    def __init__(self, data_width):
        self._w = data_width
        self.latency = CrcPipe.stages(data_width)
        sig = stream.Signature(bytes_layout(data_width))
        super().__init__({"i": In(sig), "o": Out(sig), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pipe = pipe = CrcPipe(self._w)
        m.d.comb += [pipe.i.valid.eq(self.i.valid), pipe.i.payload.eq(self.i.payload), self.i.ready.eq(1),
                     pipe.o.ready.eq(1), self.o.valid.eq(pipe.o.valid), self.o.payload.eq(pipe.o.payload),
                     self.ok.eq(pipe.residue)]
        return m
