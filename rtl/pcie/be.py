# Ref: PCI Express Base Specification 4.0, §2.2.5 (First/Last DW Byte Enables),
# §2.3.1.1 (Byte Count and Lower Address of completions).
"""Byte-enable arithmetic as Amaranth expressions (the plain-Python twins are
:func:`rtl.pcie.tlp.first_last_be` and :func:`rtl.pcie.tlp.be_byte_count`)."""

from amaranth.hdl import Const, Mux, Signal

__all__ = ["be_low", "be_high", "request_bes", "read_byte_count"]


def be_low(be):
    """Index of the lowest set bit of a 4-bit byte enable (0 when none is set)."""
    return Mux(be[0], 0, Mux(be[1], 1, Mux(be[2], 2, Mux(be[3], 3, 0))))


def be_high(be):
    """Index of the highest set bit of a 4-bit byte enable (0 when none is set)."""
    return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))


def request_bes(m, addr_lo, nbytes, len_width):
    """DWORD count and first/last byte enables of a request for ``nbytes`` (> 0)
    bytes at an address whose two low bits are ``addr_lo``.

    Returns ``(dws, first_be, last_be)`` as signals driven combinationally in ``m``.
    """
    dws = Signal(len_width + 1)
    first_be = Signal(4)
    last_be = Signal(4)
    end = Signal(2)  # byte offset of the last byte within its DWORD
    m.d.comb += [
        dws.eq((addr_lo + nbytes + 3) >> 2),
        end.eq(addr_lo + nbytes - 1),
    ]
    first = (Const(0xF, 4) << addr_lo)[:4]
    last = (Const(0xF, 4) >> (~end)[:2])[:4]  # ~end == 3 - end
    with m.If(dws == 1):
        m.d.comb += [first_be.eq(first & last), last_be.eq(0)]
    with m.Else():
        m.d.comb += [first_be.eq(first), last_be.eq(last)]
    return dws, first_be, last_be


def read_byte_count(m, first_be, last_be, length):
    """Byte count a completer reports for a read of ``length`` DWORDs (§2.3.1.1)."""
    bc = Signal(13)
    with m.If(length == 1):
        with m.If(first_be == 0):
            m.d.comb += bc.eq(1)
        with m.Else():
            m.d.comb += bc.eq(be_high(first_be) - be_low(first_be) + 1)
    with m.Else():
        m.d.comb += bc.eq((length << 2) - be_low(first_be) - (~be_high(last_be))[:2])
    return bc
