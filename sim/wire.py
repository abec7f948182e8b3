"""The Ethernet wire in the two-NIC simulation, from Python: frames a test
puts on it (``WireInjector``) and a pcap capture of what crosses it
(``WireCapture``). Both run per cycle only while they have work, or when a
capture was asked for."""

import struct
import zlib

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from rtl.streams import bytes_layout
from .signals import FastSignal

__all__ = ["eth_fcs", "eth_frame", "WireInjector", "WireCapture", "read_pcap"]


def eth_fcs(frame):
    """The FCS of a frame (CRC-32 as IEEE 802.3 sends it), from zlib."""
    return (zlib.crc32(frame) & 0xFFFF_FFFF).to_bytes(4, "little")


def eth_frame(dst, src, ethertype, payload, pad=True):
    """A frame as a NIC would send it, without FCS: padded to 60 bytes."""
    f = bytes(dst) + bytes(src) + struct.pack(">H", ethertype) + bytes(payload)
    return f + bytes(max(0, 60 - len(f))) if pad else f


class _Beats:
    def __init__(self, width):
        layout = bytes_layout(width)
        off = {name: f.offset for name, f in layout}
        self.o_data, self.o_nbytes, self.o_last = off["data"], off["nbytes"], off["last"]
        self.bb = width // 8
        self.mask = (1 << width) - 1
        self.nmask = (1 << (self.bb.bit_length())) - 1

    def pack(self, chunk, last):
        return ((int.from_bytes(chunk, "little") << self.o_data) | (len(chunk) << self.o_nbytes)
                | (int(last) << self.o_last))

    def unpack(self, v):
        n = (v >> self.o_nbytes) & self.nmask
        return ((v >> self.o_data) & self.mask).to_bytes(self.bb, "little")[:n], (v >> self.o_last) & 1


class WireInjector:
    """Puts whole frames (bytes exactly as on the wire, FCS included or not, as
    the test wants) onto the wire into NIC ``n``, ahead of what its peer sends."""

    def __init__(self, dut, n, width):
        self.dut = dut
        self.b = _Beats(width)
        self.valid = FastSignal(getattr(dut, f"inj_{n}__valid"))
        self.payload = FastSignal(getattr(dut, f"inj_{n}__payload"))
        self.ready = FastSignal(getattr(dut, f"inj_{n}__ready"))
        self.valid.set(0)
        self.queue = Queue()
        self.sent = 0
        cocotb.start_soon(self._run())

    async def send(self, wire_bytes):
        await self.queue.put(bytes(wire_bytes))

    async def _run(self):
        clk = RisingEdge(self.dut.clk)
        while True:
            frame = await self.queue.get()
            await clk
            bb = self.b.bb
            chunks = [frame[i:i + bb] for i in range(0, len(frame), bb)] or [b""]
            for k, c in enumerate(chunks):
                self.payload.set(self.b.pack(c, k == len(chunks) - 1))
                self.valid.set(1)
                await clk
                while not self.ready.get():
                    await clk
            self.valid.set(0)
            self.sent += 1


class WireCapture:
    """Writes every frame that arrives at either NIC to a pcap file (Ethernet
    link type, nanosecond timestamps from the simulation clock), without its
    FCS; ``frames`` keeps (time in ns, NIC it reached, bytes with FCS)."""

    def __init__(self, dut, path, width, clock_ns):
        self.b = _Beats(width)
        self.dut = dut
        self.path = path
        self.frames = []
        self.f = open(path, "wb")
        # pcap global header, nanosecond variant.
        self.f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        self.f.flush()
        self.ports = {n: (FastSignal(getattr(dut, f"wire_{n}_valid")), FastSignal(getattr(dut, f"wire_{n}_payload")))
                      for n in ("a", "b")}
        cocotb.start_soon(self._run())

    async def _run(self):
        clk = RisingEdge(self.dut.clk)
        cur = {n: bytearray() for n in self.ports}
        while True:
            await clk
            for n, (valid, payload) in self.ports.items():
                if valid.get():
                    data, last = self.b.unpack(payload.get())
                    cur[n] += data
                    if last:
                        self._record(n, bytes(cur[n]))
                        cur[n] = bytearray()

    def _record(self, n, frame):
        t = get_sim_time("ns")
        self.frames.append((t, n, frame))
        body = frame[:-4] if len(frame) >= 4 else frame
        sec, nsec = divmod(int(t), 1_000_000_000)
        self.f.write(struct.pack("<IIII", sec, nsec, len(body), len(body)) + body)
        self.f.flush()


def read_pcap(path):
    """(timestamp ns, frame) records of a pcap file written by WireCapture."""
    raw = open(path, "rb").read()
    magic, = struct.unpack_from("<I", raw, 0)
    if magic != 0xA1B23C4D:
        raise ValueError(f"{path}: not a nanosecond pcap file (magic {magic:#x})")
    out, pos = [], 24
    while pos < len(raw):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", raw, pos)
        pos += 16
        out.append((sec * 1_000_000_000 + nsec, raw[pos:pos + incl]))
        pos += incl
    return out
