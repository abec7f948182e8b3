# Ref: PCI Express Base Specification 4.0, §2.2 (Transaction Layer Packets):
# §2.2.1 common header fields, §2.2.4.1 address formats, §2.2.7 memory request
# header, §2.2.9 completion header, §2.3.1.1 data return for read requests.
"""The generic TLP stream and the TLP header layout.

A TLP travels as a packet of *beats*. Every beat carries the 128-bit header as
sideband (meaningful on the first beat, ``sop``), ``data_width`` bits of payload,
``sop``/``eop`` markers, ``nbytes`` (payload bytes valid in this beat, counted
from lane 0) and, on requests from the host, the BAR that the address hit.

Header DWORD *n* sits at bits ``[32n+31:32n]`` with the bit numbering of the
specification (``fmt`` in bits 31:29 of DWORD 0). Payload byte *k* of a beat is
bits ``[8k+7:8k]``; the first payload DWORD of a TLP is in lane 0 of its first
beat, so a TLP whose address is not DWORD-aligned starts with the bytes below
the address, masked off by ``first_be``.

A TLP without payload (MemRd, Cpl) is a single beat with ``nbytes == 0``.
"""

from amaranth.lib import enum

from amaranth.hdl import Cat, Const, Mux, unsigned
from amaranth.lib import data, stream

__all__ = [
    "Fmt", "TlpType", "CplStatus", "TlpHeader", "ReqHeader", "CplHeader",
    "tlp_beat_layout", "TlpStream", "HDR_FIELDS", "hdr_get", "hdr_put",
    "FMT_TYPE_MRD32", "FMT_TYPE_MRD64", "FMT_TYPE_MWR32", "FMT_TYPE_MWR64",
    "FMT_TYPE_CPL", "FMT_TYPE_CPLD", "first_last_be", "be_byte_count", "mem_request_header",
]


class Fmt(enum.IntEnum, shape=3):
    DW3 = 0b000
    DW4 = 0b001
    DW3_DATA = 0b010
    DW4_DATA = 0b011


class TlpType(enum.IntEnum, shape=5):
    MEM = 0b00000
    CPL = 0b01010


class CplStatus(enum.IntEnum, shape=3):
    SC = 0b000   # successful completion
    UR = 0b001   # unsupported request
    CRS = 0b010  # configuration request retry status
    CA = 0b100   # completer abort


# fmt:type, seven bits, as in DWORD 0 bits 30:24 (fmt bit 2 is reserved).
FMT_TYPE_MRD32 = (Fmt.DW3 << 5) | TlpType.MEM
FMT_TYPE_MRD64 = (Fmt.DW4 << 5) | TlpType.MEM
FMT_TYPE_MWR32 = (Fmt.DW3_DATA << 5) | TlpType.MEM
FMT_TYPE_MWR64 = (Fmt.DW4_DATA << 5) | TlpType.MEM
FMT_TYPE_CPL = (Fmt.DW3 << 5) | TlpType.CPL
FMT_TYPE_CPLD = (Fmt.DW3_DATA << 5) | TlpType.CPL


class Dw0(data.Struct):
    length: 10
    at: 2
    attr: 2
    ep: 1
    td: 1
    th: 1
    ln: 1
    attr2: 1
    tag8: 1
    tc: 3
    tag9: 1
    type: 5
    fmt: 3


class ReqDw1(data.Struct):
    first_be: 4
    last_be: 4
    tag: 8
    requester_id: 16


class CplDw1(data.Struct):
    byte_count: 12
    bcm: 1
    status: 3
    completer_id: 16


class CplDw2(data.Struct):
    lower_address: 7
    _rsvd: 1
    tag: 8
    requester_id: 16


class ReqHeader(data.Struct):
    """Memory request header. A 3-DW header has ``addr[31:2]`` in ``dw2[31:2]``;
    a 4-DW header has ``addr[63:32]`` in ``dw2`` and ``addr[31:2]`` in ``dw3[31:2]``."""
    dw0: Dw0
    dw1: ReqDw1
    dw2: 32
    dw3: 32


class CplHeader(data.Struct):
    dw0: Dw0
    dw1: CplDw1
    dw2: CplDw2
    dw3: 32


class TlpHeader(data.Union):
    req: ReqHeader
    cpl: CplHeader


def tlp_beat_layout(data_width):
    """Layout of one beat of the TLP stream for a ``data_width``-bit datapath."""
    if data_width % 32:
        raise ValueError(f"TLP data width must be a multiple of 32 bits, not {data_width}")
    return data.StructLayout({
        "hdr": TlpHeader,
        "data": unsigned(data_width),
        "nbytes": unsigned((data_width // 8).bit_length()),
        "sop": 1,
        "eop": 1,
        "bar": 3,
    })


def TlpStream(data_width):
    """Stream signature of a TLP stream (source side; flip it for a sink)."""
    return stream.Signature(tlp_beat_layout(data_width))


def _walk(layout, prefix, offset, out):
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout) or (isinstance(shape, type) and issubclass(shape, data.Struct)):
            sub = data.Layout.cast(shape)
            _walk(sub, f"{prefix}{name}.", offset + field.offset, out)
        else:
            out[f"{prefix}{name}"] = (offset + field.offset, field.width)


def _header_fields():
    out = {}
    for kind in ("req", "cpl"):
        _walk(data.Layout.cast(ReqHeader if kind == "req" else CplHeader), f"{kind}.", 0, out)
    return out


#: ``"req.dw1.first_be" -> (bit offset, width)`` for every header field; the
#: plain-Python view of :class:`TlpHeader` used by the simulation models.
HDR_FIELDS = _header_fields()


def hdr_get(hdr, name):
    off, width = HDR_FIELDS[name]
    return (hdr >> off) & ((1 << width) - 1)


def hdr_put(hdr, name, value):
    off, width = HDR_FIELDS[name]
    mask = ((1 << width) - 1) << off
    return (hdr & ~mask) | ((value << off) & mask)


def first_last_be(addr, length):
    """First/last DWORD byte enables and DWORD count for ``length`` bytes at ``addr``
    (plain Python; the RTL computes the same in :mod:`rtl.pcie.be`)."""
    a = addr & 3
    dws = (a + length + 3) // 4
    first = (0xF << a) & 0xF
    last = 0xF >> (3 - ((a + length - 1) & 3))
    if dws == 1:
        return first & last, 0, dws
    return first, last, dws


def be_byte_count(first_be, last_be, length_dw):
    """Byte count of a read request as the completer computes it (§2.3.1.1)."""
    if length_dw == 1:
        if first_be == 0:
            return 1
        lo = (first_be & -first_be).bit_length() - 1
        hi = first_be.bit_length() - 1
        return hi - lo + 1
    lo = (first_be & -first_be).bit_length() - 1
    hi = last_be.bit_length() - 1
    return length_dw * 4 - lo - (3 - hi)


def mem_request_header(hdr, *, addr, dws, first_be, last_be, requester_id, write, tag=0):
    """Statements that fill the request header ``hdr`` (a ``ReqHeader`` view)
    for a MemWr (``write``) or MemRd of ``dws`` DWORDs at byte address ``addr``:
    a 3-DWORD header below 4 GiB, a 4-DWORD one above (§2.2.4.1)."""
    four_dw = addr[32:] != 0
    dw_addr = Cat(Const(0, 2), addr[2:32])
    return [
        hdr.dw0.fmt.eq(Mux(four_dw, Fmt.DW4_DATA if write else Fmt.DW4, Fmt.DW3_DATA if write else Fmt.DW3)),
        hdr.dw0.type.eq(TlpType.MEM),
        hdr.dw0.length.eq(dws[:10] if hasattr(dws, "shape") else dws),
        hdr.dw1.first_be.eq(first_be),
        hdr.dw1.last_be.eq(last_be),
        hdr.dw1.tag.eq(tag),
        hdr.dw1.requester_id.eq(requester_id),
        hdr.dw2.eq(Mux(four_dw, addr[32:], dw_addr)),
        hdr.dw3.eq(Mux(four_dw, dw_addr, 0)),
    ]
