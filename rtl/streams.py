"""Stream payloads shared by several blocks."""

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["bytes_layout"]


def bytes_layout(data_width):
    """A packed byte stream: byte 0 in lane 0, ``nbytes`` valid bytes from lane 0
    (only the last beat of a packet may be short), ``last`` on a packet's final
    beat. Used for DMA write data, Ethernet frames and the wire."""
    return data.StructLayout({
        "data": unsigned(data_width),
        "nbytes": unsigned((data_width // 8).bit_length()),
        "last": 1,
    })
