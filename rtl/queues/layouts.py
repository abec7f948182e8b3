"""Descriptor and completion records: the layouts in host memory, defined once
for the RTL, the host driver and the tests.

Rings live in host memory. A ring of ``2**log_size`` entries is indexed by
16-bit producer and consumer counters that run past the ring size and wrap at
2**16; an entry's slot is the counter modulo the ring size.

A **descriptor** (16 bytes) gives one buffer: address, length and flags. With
``MORE`` set the next descriptor of the ring continues the same frame, so a
frame gathers from (transmit) or scatters into (receive) a *chain* of buffers.

A **completion** (16 bytes) reports one chain: which queue and ring index it
started at, how many descriptors it used, the frame's length, a
:class:`QueueStatus`, the NIC's cycle counter when it was written, and a phase
bit that the NIC writes as 1 on the first pass over the completion ring, 0 on
the second, and so on, so the host sees new entries without reading a register.
"""

import functools

from amaranth.lib import data, enum

__all__ = ["DESC_BYTES", "CPL_BYTES", "DescFlags", "QueueStatus", "QueueKind", "Descriptor", "Completion",
           "pack", "unpack"]

DESC_BYTES = 16
CPL_BYTES = 16


class DescFlags(enum.IntFlag, shape=16):
    MORE = 1


class QueueStatus(enum.IntEnum, shape=4):
    OK = 0
    PROTECTION = 1   # a buffer lies outside the queue's protection domain (not DMA'd)
    ZERO_LENGTH = 2  # a buffer of zero bytes (not DMA'd)
    DMA_ERROR = 3    # a DMA read or write of the frame failed
    TRUNCATED = 4    # the received frame was longer than the chain; the rest was dropped
    TOO_LONG = 5     # a frame to send is longer than max_frame (FCS included; not DMA'd)


class QueueKind(enum.IntEnum, shape=1):
    TX = 0
    RX = 1


class Descriptor(data.Struct):
    addr: 64
    len: 32
    flags: 16
    _rsvd: 16


class Completion(data.Struct):
    len: 32
    index: 16
    queue: 8
    status: 4
    kind: 1
    _rsvd0: 2
    phase: 1
    ndesc: 8
    _rsvd1: 24
    timestamp: 32


assert data.Layout.cast(Descriptor).size == 8 * DESC_BYTES
assert data.Layout.cast(Completion).size == 8 * CPL_BYTES


@functools.cache
def _fields(layout):
    return {name: (f.offset, f.width) for name, f in data.Layout.cast(layout)}


@functools.cache
def _public(layout):
    return tuple((name, off, (1 << width) - 1) for name, (off, width) in _fields(layout).items()
                 if not name.startswith("_"))


def pack(layout, **values):
    """Bytes of a record (plain Python), from its field values."""
    fields = _fields(layout)
    v = 0
    for name, x in values.items():
        off, width = fields[name]
        if int(x) >> width:
            raise ValueError(f"{layout.__name__}.{name} is {width} bits wide; {x:#x} does not fit")
        v |= int(x) << off
    return v.to_bytes(data.Layout.cast(layout).size // 8, "little")


def unpack(layout, raw):
    """Field values of a record from its bytes."""
    v = int.from_bytes(raw, "little")
    return {name: (v >> off) & mask for name, off, mask in _public(layout)}
