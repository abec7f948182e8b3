"""Client interfaces of the DMA engines.

A read client sends :func:`read_req_layout` requests and receives, per request
and in request order, the bytes as a packed stream (:func:`read_data_layout`):
``ceil(len / beat_bytes)`` beats, byte 0 in lane 0, ``nbytes`` valid bytes per
beat (the last one may be short), ``last`` on the final beat, whose ``status``
(:class:`rtl.regmap.DmaStatus`) says how the request ended. A request refused
at once (zero length, bus mastering off) yields a single beat with
``nbytes == 0``, ``last`` and its status.

A write client sends :func:`write_req_layout` requests and, in the same order,
the bytes of each as ``ceil(len / beat_bytes)`` packed beats of
:func:`write_data_layout`; it receives one :func:`write_resp_layout` status per
request once its last TLP has gone out (or it was refused).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["LEN_BITS", "STATUS_BITS", "read_req_layout", "read_data_layout",
           "write_req_layout", "write_data_layout", "write_resp_layout"]

#: Width of a DMA length: requests move 0 .. 2**24 - 1 bytes.
LEN_BITS = 24
STATUS_BITS = 4


def read_req_layout():
    return data.StructLayout({"addr": unsigned(64), "len": unsigned(LEN_BITS)})


def read_data_layout(data_width):
    return data.StructLayout({
        "data": unsigned(data_width),
        "nbytes": unsigned((data_width // 8).bit_length()),
        "last": 1,
        "status": unsigned(STATUS_BITS),
    })


def write_req_layout():
    return data.StructLayout({"addr": unsigned(64), "len": unsigned(LEN_BITS)})


def write_data_layout(data_width):
    return data.StructLayout({"data": unsigned(data_width)})


def write_resp_layout():
    return data.StructLayout({"status": unsigned(STATUS_BITS)})
