"""Client interfaces of the DMA engines.

Requests come in *groups*: a request with ``more`` set is continued by the
next one, and the bytes of a group form one packed byte stream (gather on the
read side, scatter on the write side). A group is the requests up to and
including one with ``more`` clear; most groups are a single request.

A read client sends :func:`read_req_layout` requests and receives, per group
and in request order, the group's bytes as a packed stream
(:func:`read_data_layout`): byte 0 in lane 0, ``nbytes`` valid bytes per beat
(only the last beat may be short), ``last`` on the final beat, whose ``status``
(:class:`rtl.regmap.DmaStatus`) says how the group ended. A group of zero bytes
yields a single beat with ``nbytes == 0``, ``last`` and ``ZERO_LENGTH``.

A write client sends :func:`write_req_layout` requests and the bytes of each
group as packed beats of :func:`write_data_layout` (only the last beat of a
group may be short; ``last`` marks it). It receives one
:func:`write_resp_layout` status per request once the request's last TLP has
been accepted by the PCIe arbiter, so anything the client does after the status
reaches the host after the data (or once the request was refused).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..streams import bytes_layout

__all__ = ["LEN_BITS", "STATUS_BITS", "read_req_layout", "read_data_layout",
           "write_req_layout", "write_data_layout", "write_resp_layout"]

#: Width of a DMA length: requests move 0 .. 2**24 - 1 bytes.
LEN_BITS = 24
STATUS_BITS = 4


def read_req_layout():
    return data.StructLayout({"addr": unsigned(64), "len": unsigned(LEN_BITS), "more": 1})


def read_data_layout(data_width):
    return data.StructLayout({
        "data": unsigned(data_width),
        "nbytes": unsigned((data_width // 8).bit_length()),
        "last": 1,
        "status": unsigned(STATUS_BITS),
    })


def write_req_layout():
    return data.StructLayout({"addr": unsigned(64), "len": unsigned(LEN_BITS), "more": 1})


def write_data_layout(data_width):
    return bytes_layout(data_width)


def write_resp_layout():
    return data.StructLayout({"status": unsigned(STATUS_BITS)})
