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

from amaranth.hdl import Cat, Const, Mux, Signal

__all__ = ["POLY", "INIT", "RESIDUE", "crc32_bytes", "crc32_update", "crc32_beat", "fcs"]

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
