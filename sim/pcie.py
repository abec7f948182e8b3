"""The PCIe endpoint model: joins a cocotbext-pcie ``RootComplex`` to the DUT's
TLP streams.

``PtlnicDevice`` is a cocotbext-pcie ``Device`` with one function that owns the
configuration space (BAR0, an MSI capability, the PCIe capability). Memory
requests from the host that hit BAR0 are turned into beats on the DUT's
``i_tlp`` stream; the DUT's ``o_tlp`` stream is decoded here: completions go
back to the root complex, memory writes land in the root complex's memory
(MSI addresses included, which fires its MSI vectors), and memory reads are
served from that memory by a completer whose knobs stress the DMA engine:
host read latency in cycles, completion splitting at the read completion
boundary (largest, every boundary, or random), reordering of completions
across requests, back-pressure on ``o_tlp``, idle cycles on ``i_tlp`` and a
fault hook that answers chosen requests with UR, CA, a wrong tag, a wrong
length, poisoned data (EP), or nothing at all.

Every TLP the DUT sends is checked against the rules a root complex would
enforce (4 KiB boundaries, MPS, MRRS, byte enables, tags, bus mastering,
framing); violations are collected in ``protocol_errors``.

One coroutine serves both streams and sleeps while they are idle. By default
it reaches the NIC through the simulation top's chunk bridge
(:mod:`sim.chunks`), so Python runs once per chunk of up to 256 bytes of a TLP
rather than once per beat; the knobs that act on single beats (``tx_pause``,
``rx_gap``) and ``beats=True`` drive the beat ports instead. The bridge adds
no cycle either way, so both paths give the NIC the same timing.
"""

import heapq
import logging
import os
import random
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi.address_space import AddressSpace, MemoryRegion
from cocotbext.pcie.core import Device, Endpoint
from cocotbext.pcie.core.caps import MsiCapability
from cocotbext.pcie.core.tlp import Tlp, TlpType

from rtl.pcie.tlp import (FMT_TYPE_CPL, FMT_TYPE_CPLD, FMT_TYPE_MRD32, FMT_TYPE_MRD64, FMT_TYPE_MWR32,
                          FMT_TYPE_MWR64, CplStatus, be_byte_count, hdr_get, tlp_beat_layout)
from .chunks import VIOLATIONS, ChunkCodec
from .signals import FastSignal
from .triggers import AnyOf

__all__ = ["LinkKnobs", "BeatCodec", "PtlnicDevice", "tlp_to_hdr", "hdr_to_tlp"]


@dataclass
class LinkKnobs:
    """How the model's completer and link behave.

    read_latency  cycles from a MemRd leaving the DUT to its first completion
                  being offered to the DUT
    split         'max': completions as large as MPS allows, cut at RCB;
                  'rcb': a completion per read completion boundary;
                  'random': cuts at randomly chosen RCB boundaries
    rcb           read completion boundary in bytes (64 or 128)
    reorder       interleave completions of different requests at random
    tx_pause      probability that ``o_tlp.ready`` is low in a cycle
    rx_gap        probability of an idle cycle between two ``i_tlp`` beats
    fault         ``fault(request) -> None | 'ur' | 'ca' | 'drop' | 'bad_tag'
                  | 'bad_len' | 'poison'``, called for every DMA read request
    seed          seed of the knobs' random choices
    beats         drive the NIC's TLP ports beat by beat even without
                  ``tx_pause`` or ``rx_gap`` (slower; the same cycles);
                  PTLNIC_BEATS=1 makes it the default
    """
    read_latency: int = 0
    split: str = "max"
    rcb: int = 64
    reorder: bool = False
    tx_pause: float = 0.0
    rx_gap: float = 0.0
    fault: Optional[Callable] = None
    seed: int = 0
    beats: bool = field(default_factory=lambda: os.environ.get("PTLNIC_BEATS", "0") not in ("", "0"))

    def __post_init__(self):
        if self.split not in ("max", "rcb", "random"):
            raise ValueError(f"split must be 'max', 'rcb' or 'random', not {self.split!r}")
        if self.rcb not in (64, 128):
            raise ValueError(f"rcb must be 64 or 128 bytes, not {self.rcb}")
        if self.read_latency < 0:
            raise ValueError(f"read_latency must be >= 0 cycles, not {self.read_latency}")


class BeatCodec:
    """Packs and unpacks the DUT's TLP beats with the layout defined in ``rtl``."""

    def __init__(self, data_width):
        layout = tlp_beat_layout(data_width)
        self.width = layout.size
        self.beat_bytes = data_width // 8
        off = {name: (f.offset, f.width) for name, f in layout}
        self.o_hdr = off["hdr"][0]
        self.o_data = off["data"][0]
        self.o_nbytes, w_nbytes = off["nbytes"]
        self.m_nbytes = (1 << w_nbytes) - 1
        self.o_sop = off["sop"][0]
        self.o_eop = off["eop"][0]
        self.o_bar, w_bar = off["bar"]
        self.m_data = (1 << data_width) - 1

    def pack(self, hdr, data, nbytes, sop, eop, bar=0):
        return ((hdr << self.o_hdr) | (data << self.o_data) | (nbytes << self.o_nbytes)
                | (sop << self.o_sop) | (eop << self.o_eop) | (bar << self.o_bar))

    def unpack(self, v):
        return ((v >> self.o_hdr) & ((1 << 128) - 1), (v >> self.o_data) & self.m_data,
                (v >> self.o_nbytes) & self.m_nbytes, (v >> self.o_sop) & 1, (v >> self.o_eop) & 1)

    def beats(self, hdr, payload=b"", bar=0):
        """The beats of one TLP (a header-only TLP is one beat with no bytes)."""
        bb = self.beat_bytes
        if not payload:
            return [self.pack(hdr, 0, 0, 1, 1, bar)]
        out = []
        n = len(payload)
        for i in range(0, n, bb):
            chunk = payload[i:i + bb]
            out.append(self.pack(hdr, int.from_bytes(chunk, "little"), len(chunk), int(i == 0),
                                 int(i + bb >= n), bar))
        return out


def tlp_to_hdr(tlp):
    raw = tlp.pack_header()
    dws = struct.unpack(f">{len(raw) // 4}L", raw)
    return sum(dw << (32 * i) for i, dw in enumerate(dws))


def hdr_to_tlp(hdr, payload=b""):
    fmt = hdr_get(hdr, "req.dw0.fmt")
    ndw = 4 if fmt & 1 else 3
    raw = struct.pack(f">{ndw}L", *[(hdr >> (32 * i)) & 0xFFFFFFFF for i in range(ndw)])
    tlp = Tlp.unpack_header(raw)
    if fmt & 2:
        tlp.data = bytearray(payload)
    return tlp


def _req_addr(hdr):
    fmt = hdr_get(hdr, "req.dw0.fmt")
    if fmt & 1:
        return (hdr_get(hdr, "req.dw2") << 32) | (hdr_get(hdr, "req.dw3") & ~3)
    return hdr_get(hdr, "req.dw2") & ~3


def _fmt_type(hdr):
    return (hdr_get(hdr, "req.dw0.fmt") << 5 | hdr_get(hdr, "req.dw0.type")) & 0x7F


def _length_dw(hdr):
    return hdr_get(hdr, "req.dw0.length") or 1024


def _cpl_hdr(*, status, byte_count, lower_address, length_dw, tag, requester_id, completer_id, with_data):
    fmt_type = FMT_TYPE_CPLD if with_data else FMT_TYPE_CPL
    dw0 = (length_dw & 0x3FF if with_data else 0) | ((fmt_type & 0x1F) << 24) | ((fmt_type >> 5) << 29)
    dw1 = (byte_count & 0xFFF) | (status << 13) | (completer_id << 16)
    dw2 = (lower_address & 0x7F) | ((tag & 0xFF) << 8) | (requester_id << 16)
    return dw0 | (dw1 << 32) | (dw2 << 64)


class PtlnicFunction(Endpoint):
    """Configuration space of the NIC's PCIe function."""

    def __init__(self, device, config, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device
        self.vendor_id = config.vendor_id
        self.device_id = config.device_id
        self.revision_id = config.revision
        self.class_code = 0x020000  # network controller, Ethernet
        self.pcie_cap.max_payload_size_supported = 5  # 4096 bytes
        self.pcie_cap.extended_tag_supported = True
        self.msi_cap = MsiCapability()
        self.msi_cap.msi_multiple_message_capable = (config.msi_vectors - 1).bit_length()
        self.msi_cap.msi_64bit_address_capable = 1
        self.register_capability(self.msi_cap)
        self.configure_bar(0, config.bar0_size)
        for t in (TlpType.MEM_READ, TlpType.MEM_READ_64, TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            self.register_rx_tlp_handler(t, self._handle_mem)

    async def _handle_mem(self, tlp):
        bar = self.match_bar(tlp.address)
        bar_id = bar[0] if bar else 7
        self.device.host_request(tlp, bar_id)

    async def handle_config_0_write_tlp(self, tlp):
        await super().handle_config_0_write_tlp(tlp)
        self.device.push_cfg()


class _TlpAssembler:
    """Puts the NIC's TLPs back together from the pieces the link loop reads
    (beats or chunks), checking their framing; ``add`` returns the TLP, as
    ``(hdr, payload)``, at its last piece."""

    def __init__(self, error, sop_inside, no_sop):
        self._error = error
        self._msgs = (sop_inside, no_sop)
        self.in_tlp = False
        self._hdr = 0
        self._data = bytearray()

    def add(self, hdr, payload, sop, eop):
        if sop:
            if self.in_tlp:
                self._error(self._msgs[0])
            self._hdr = hdr
            self._data = bytearray()
        elif not self.in_tlp:
            self._error(self._msgs[1])
        self._data += payload
        self.in_tlp = not eop
        return (self._hdr, self._data) if eop else None


class PtlnicDevice(Device):
    """The NIC behind its PCIe link, as the root complex sees it.

    dut       the cocotb handle of the top level
    clk       its clock; ``period`` is the clock period in simulator steps
    config    the ``NicConfig`` the model was built with
    knobs     :class:`LinkKnobs`
    prefix    of the NIC's ports in the top level (``a_`` for ``a_i_tlp``...)
    """

    def __init__(self, dut, clk, period, config, knobs=None, *args, prefix="", **kwargs):
        super().__init__(*args, **kwargs)
        self.log = logging.getLogger("cocotb.ptlnic.pcie")
        self.dut = dut
        self.clk = clk
        self.period = period
        self.config = config
        self.knobs = knobs or LinkKnobs()
        self.rng = random.Random(self.knobs.seed)
        self.host_memory = None  # set by the testbench: the root complex's AddressSpace
        self._mem_cache = []
        self.fn = PtlnicFunction(self, config)
        self.append_function(self.fn)
        self.codec = BeatCodec(config.data_width)
        self.chunk_codec = ChunkCodec()
        k = self.knobs
        self.chunked = not (k.beats or k.tx_pause or k.rx_gap)
        #: packs one TLP the way the link loop sends it: chunks or beats
        self._pack = self.chunk_codec.chunks if self.chunked else self.codec.beats
        self.tx_cycle = 0            # cycle of the last beat of the TLP the observers are shown

        self.prefix = prefix
        port = lambda name: getattr(dut, prefix + name)   # noqa: E731
        self._port = port
        self.i_payload = FastSignal(port("i_tlp__payload"))
        self.i_valid = FastSignal(port("i_tlp__valid"))
        self.i_ready = FastSignal(port("i_tlp__ready"))
        self.o_payload = FastSignal(port("o_tlp__payload"))
        self.o_valid = FastSignal(port("o_tlp__valid"))
        self.o_ready = FastSignal(port("o_tlp__ready"))
        self.rx_observers = []       # callables(cycle, hdr) when a host TLP has reached the NIC

        self.protocol_errors = []
        self.tx_observers = []       # callables(fmt_type, hdr, payload) for every DUT TLP
        self.stats = {"tx_tlps": 0, "rx_tlps": 0, "mwr_bytes": 0, "cpl_bytes": 0, "faults": 0}

        self._wake = Event()
        self._host_q = deque()       # beat lists of host requests, sent first
        self._cpl_q = {}             # tag -> deque of (release cycle, seq, beats)
        self._cpl_heap = []          # (release cycle, seq, tag) of queued completions
        self._seq = 0
        self._outstanding = {}       # tag -> remaining completion TLPs
        self._upstream = Queue()
        self._rx = None              # beats of the TLP being sent to the DUT
        self._rx_i = 0
        self._ready_now = 1

        self.push_cfg()
        self.i_valid.set(0)
        self.o_ready.set(1)
        port("chunked").value = int(self.chunked)
        self._violations = FastSignal(port("tlp_violations"))
        self._seen_bad = 0
        port("h2d__valid").value = 0
        port("d2h__ready").value = 1
        cocotb.start_soon(self._link_chunks() if self.chunked else self._link())
        cocotb.start_soon(self._send_upstream())

    # ------------------------------------------------------------ config state
    def push_cfg(self):
        fn, p = self.fn, self._port
        msi = fn.msi_cap
        p("cfg__requester_id").value = int(fn.pcie_id)
        p("cfg__bus_master").value = int(bool(fn.bus_master_enable))
        p("cfg__mps").value = fn.pcie_cap.max_payload_size
        p("cfg__mrrs").value = fn.pcie_cap.max_read_request_size
        p("cfg__msi_enable").value = int(bool(msi.msi_enable))
        p("cfg__msi_addr").value = msi.msi_message_address
        p("cfg__msi_data").value = msi.msi_message_data & 0xFFFF
        p("cfg__msi_mme").value = msi.msi_multiple_message_enable

    @property
    def mps(self):
        return 128 << self.fn.pcie_cap.max_payload_size

    @property
    def mrrs(self):
        return 128 << self.fn.pcie_cap.max_read_request_size

    def cycle(self):
        return get_sim_time("step") // self.period

    def link_state(self):
        """The link's state, for failure messages (a request that never completes)."""
        return {"o_valid": self.o_valid.get(), "o_ready": self.o_ready.get(), "i_valid": self.i_valid.get(),
                "i_ready": self.i_ready.get(), "host_requests_queued": len(self._host_q),
                "sending_to_nic": self._rx is not None, "completions_queued": len(self._cpl_heap),
                "reads_outstanding": len(self._outstanding), "stats": dict(self.stats)}

    # ------------------------------------------------------------ host memory
    def _plain_memory(self, addr, length):
        """``(buffer, offset)`` when ``[addr, addr + length)`` lies inside one plain
        memory region of the root complex's address space, else None (then the
        access goes through the address space, which also reaches MSI and any
        other special region). Lookups are cached: DMA hits few buffers."""
        for start, end, mem, delta in self._mem_cache:
            if start <= addr and addr + length <= end:
                return mem, addr - delta
        space, base = self.host_memory, 0
        while True:
            hits = space.find_regions(addr - base, length)
            if len(hits) != 1:
                return None
            rbase, rsize, offset, region = hits[0]
            if offset is None or not (rbase <= addr - base and addr - base + length <= rbase + rsize):
                return None
            if isinstance(region, MemoryRegion) and type(region) is MemoryRegion:
                start = base + rbase
                self._mem_cache.insert(0, (start, start + rsize, region.mem, start - offset))
                del self._mem_cache[8:]
                return region.mem, addr - start + offset
            if isinstance(region, AddressSpace):
                space, base = region, base + rbase - offset
                continue
            return None

    async def _mem_write(self, addr, data):
        hit = self._plain_memory(addr, len(data))
        if hit:
            mem, off = hit
            mem[off:off + len(data)] = data
        else:
            await self.host_memory.write(addr, data)

    async def _mem_read(self, addr, length):
        hit = self._plain_memory(addr, length)
        if hit:
            mem, off = hit
            return bytes(mem[off:off + length])
        return await self.host_memory.read(addr, length)

    # ------------------------------------------------------- host -> DUT side
    def host_request(self, tlp, bar_id):
        hdr = tlp_to_hdr(tlp)
        payload = bytes(tlp.data) if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64) else b""
        self._host_q.append(self._pack(hdr, payload, bar_id))
        self._wake.set()

    def _next_rx(self, now):
        """Beats of the next TLP to send to the DUT, or None."""
        if self._host_q:
            return self._host_q.popleft()
        heap = self._cpl_heap
        if not heap or heap[0][0] > now:
            return None
        if self.knobs.reorder:
            due = [e for e in heap if e[0] <= now]
            pick = self.rng.choice(due)
            heap.remove(pick)
            heapq.heapify(heap)
        else:
            pick = heapq.heappop(heap)
        tag = pick[2]
        q = self._cpl_q[tag]
        _, _, beats = q.popleft()
        if q:
            # The next completion of the request keeps its place (release,
            # then queueing order), whenever this one is picked: the order
            # does not depend on when the link loop asks, so the beat-by-beat
            # loop and the chunk loop (which asks ahead) send the same TLPs.
            heapq.heappush(heap, (q[0][0], q[0][1], tag))
        else:
            del self._cpl_q[tag]
        return beats

    def _until_release(self):
        """Simulator steps from now to half a cycle before the first queued
        completion's release (a wake-up there, then the clock edge)."""
        return (self._cpl_heap[0][0] - self.cycle()) * self.period - self.period // 2

    def _queue_completions(self, tag, cpls, release):
        q = self._cpl_q.setdefault(tag, deque())
        was_empty = not q
        for hdr, payload in cpls:
            self._seq += 1
            q.append((release, self._seq, self._pack(hdr, payload)))
        if was_empty and q:
            heapq.heappush(self._cpl_heap, (q[0][0], q[0][1], tag))

    # ------------------------------------------------------- DUT -> host side
    def _error(self, msg):
        self.log.error("protocol violation: %s", msg)
        self.protocol_errors.append(msg)

    async def _tx_tlp(self, hdr, payload, now):
        ft = _fmt_type(hdr)
        self.stats["tx_tlps"] += 1
        self.tx_cycle = now
        for obs in self.tx_observers:
            obs(ft, hdr, bytes(payload))
        length = _length_dw(hdr)
        if ft in (FMT_TYPE_MWR32, FMT_TYPE_MWR64, FMT_TYPE_MRD32, FMT_TYPE_MRD64):
            addr = _req_addr(hdr)
            first_be = hdr_get(hdr, "req.dw1.first_be")
            last_be = hdr_get(hdr, "req.dw1.last_be")
            if (ft in (FMT_TYPE_MWR64, FMT_TYPE_MRD64)) and addr < (1 << 32):
                self._error(f"4-DW header for a 32-bit address {addr:#x}")
            if (addr & 0xFFF) + 4 * length > 0x1000:
                self._error(f"request at {addr:#x} of {length} DW crosses a 4 KiB boundary")
            if length == 1 and last_be != 0:
                self._error(f"1-DW request with last_be {last_be:#x}")
            if length > 1 and (first_be == 0 or last_be == 0):
                self._error(f"{length}-DW request with first_be {first_be:#x} last_be {last_be:#x}")
            if not self.fn.bus_master_enable:
                self._error(f"request at {addr:#x} with bus mastering disabled")
        if ft in (FMT_TYPE_MWR32, FMT_TYPE_MWR64):
            if len(payload) != 4 * length:
                self._error(f"MemWr with length {length} DW carries {len(payload)} bytes")
                return
            if 4 * length > self.mps:
                self._error(f"MemWr of {4 * length} bytes exceeds MPS {self.mps}")
            await self._write_memory(_req_addr(hdr), payload, hdr_get(hdr, "req.dw1.first_be"),
                                     hdr_get(hdr, "req.dw1.last_be"), length)
        elif ft in (FMT_TYPE_MRD32, FMT_TYPE_MRD64):
            if payload:
                self._error("MemRd with payload")
            if 4 * length > self.mrrs:
                self._error(f"MemRd of {4 * length} bytes exceeds MRRS {self.mrrs}")
            await self._serve_read(hdr, now)
        elif ft in (FMT_TYPE_CPL, FMT_TYPE_CPLD):
            if ft == FMT_TYPE_CPLD and len(payload) != 4 * length:
                self._error(f"CplD with length {length} DW carries {len(payload)} bytes")
            tlp = hdr_to_tlp(hdr, payload)
            if tlp.completer_id != self.fn.pcie_id:
                self._error(f"completion with completer ID {tlp.completer_id}, expected {self.fn.pcie_id}")
            self._upstream.put_nowait(tlp)
        else:
            self._error(f"unexpected TLP fmt/type {ft:#04x}")

    async def _write_memory(self, addr, payload, first_be, last_be, length):
        """Apply a MemWr under its byte enables: only the first and last DWORD
        can be partial, so the enabled bytes form at most a few runs."""
        n = 4 * length
        if length == 1:
            masks = ((0, first_be),)
        else:
            masks = ((0, first_be), (n - 4, last_be))
        enabled = bytearray(b"\x01") * n
        for base, be in masks:
            for b in range(4):
                if not be >> b & 1:
                    enabled[base + b] = 0
        self.stats["mwr_bytes"] += enabled.count(1)
        start = enabled.find(1)
        while start >= 0:
            end = enabled.find(0, start)
            end = n if end < 0 else end
            try:
                await self._mem_write(addr + start, payload[start:end])
            except Exception as exc:
                self._error(f"MemWr to unmapped host address {addr + start:#x}: {exc}")
            start = enabled.find(1, end)

    async def _serve_read(self, hdr, now):
        tag = hdr_get(hdr, "req.dw1.tag") | (hdr_get(hdr, "req.dw0.tag8") << 8) | (hdr_get(hdr, "req.dw0.tag9") << 9)
        if tag in self._outstanding:
            self._error(f"MemRd reuses tag {tag} while it is outstanding")
        length = _length_dw(hdr)
        dw_addr = _req_addr(hdr)
        first_be = hdr_get(hdr, "req.dw1.first_be")
        last_be = hdr_get(hdr, "req.dw1.last_be")
        byte_count = be_byte_count(first_be, last_be, length)
        first = dw_addr + ((first_be & -first_be).bit_length() - 1 if first_be else 0)
        rid = hdr_get(hdr, "req.dw1.requester_id")
        cid = int(self.fn.pcie_id)
        k = self.knobs
        fault = k.fault({"addr": first, "len": byte_count, "tag": tag}) if k.fault else None
        release = now + k.read_latency
        common = dict(tag=tag, requester_id=rid, completer_id=cid)
        if fault:
            self.stats["faults"] += 1
        if fault == "drop":
            return
        if fault in ("ur", "ca"):
            status = CplStatus.UR if fault == "ur" else CplStatus.CA
            self._queue_completions(tag, [(_cpl_hdr(status=status, byte_count=byte_count, lower_address=0,
                                                    length_dw=0, with_data=False, **common), b"")], release)
            self._outstanding[tag] = 1
            return
        try:
            data = await self._mem_read(dw_addr, 4 * length)
        except Exception:
            self._queue_completions(tag, [(_cpl_hdr(status=CplStatus.UR, byte_count=byte_count, lower_address=0,
                                                    length_dw=0, with_data=False, **common), b"")], release)
            self._outstanding[tag] = 1
            return
        cpls = []
        cur, end, remaining = first, first + byte_count, byte_count
        mps, rcb = self.mps, k.rcb
        while remaining:
            start_dw = cur & ~3
            limit = start_dw + mps                      # payload may not exceed MPS
            if (end + 3) & ~3 <= limit:
                cut_hi = end
            else:
                cut_hi = limit & ~(rcb - 1)             # largest cut at an RCB boundary
            first_cut = min(((cur // rcb) + 1) * rcb, end)
            if k.split == "max":
                cut = cut_hi
            elif k.split == "rcb":
                cut = first_cut
            else:
                choices = list(range(first_cut, cut_hi, rcb)) + [cut_hi]
                cut = self.rng.choice(choices)
            nbytes = cut - cur
            pay_end = (cut + 3) & ~3
            payload = data[start_dw - dw_addr:pay_end - dw_addr]
            cpls.append((_cpl_hdr(status=CplStatus.SC, byte_count=remaining, lower_address=cur,
                                  length_dw=len(payload) // 4, with_data=True, **common), payload))
            self.stats["cpl_bytes"] += nbytes
            remaining -= nbytes
            cur = cut
        if fault == "bad_tag":
            bad = tag ^ 0x80        # a tag the NIC never has outstanding (it uses fewer than 128)
            cpls = [(h & ~(0xFF << 72) | (bad << 72), p) for h, p in cpls]
            tag_q = bad
        elif fault == "poison":
            h, p = cpls[0]
            cpls[0] = (h | (1 << 14), p)        # EP, DWORD 0 bit 14: the first completion's data is poisoned
            tag_q = tag
            self._outstanding[tag] = len(cpls)
        elif fault == "bad_len":
            h, p = cpls[0]
            bc = hdr_get(h, "cpl.dw1.byte_count")
            cpls = [((h & ~(0xFFF << 32)) | (((bc + 4) & 0xFFF) << 32), p)]
            tag_q = tag
        else:
            tag_q = tag
            self._outstanding[tag] = len(cpls)
        self._queue_completions(tag_q, cpls, release)

    async def _send_upstream(self):
        while True:
            tlp = await self._upstream.get()
            await self.fn.send(tlp)

    # ------------------------------------------------------------- link loop
    async def _link(self):
        codec = self.codec
        unpack = codec.unpack
        beat_bytes = codec.beat_bytes
        k = self.knobs
        rng = self.rng
        o_valid = self.o_valid.get
        o_payload = self.o_payload.get
        i_ready = self.i_ready.get
        i_payload = self.i_payload.set
        rx_driven = 0        # beat value currently driven with valid, or 0
        offered = None       # a beat the DUT offered while o_tlp.ready was low
        rx_valid = 0
        tlps = _TlpAssembler(self._error, "o_tlp: sop inside a TLP", "o_tlp: beat without sop")
        now = self.cycle()
        clk_edge = RisingEdge(self.clk)
        valid_rise = RisingEdge(self._port("o_tlp__valid"))
        while True:
            if (not rx_valid and self._rx is None and not self._host_q
                    and not (self._cpl_heap and self._cpl_heap[0][0] <= now) and not o_valid()):
                # Nothing to send and nothing arriving: sleep until there is.
                self._wake.clear()
                waits = [self._wake.wait(), valid_rise]
                if self._cpl_heap:
                    delta = self._until_release()
                    if delta > 0:
                        waits.append(Timer(delta, "step"))
                await AnyOf(*waits)
                await clk_edge
                now = self.cycle()
            else:
                await clk_edge
                now += 1

            # DUT -> host: a beat moves when valid and ready were both high at
            # this edge; a beat offered and not taken must stay, unchanged.
            if offered is not None:
                if not o_valid() or o_payload() != offered:
                    self._error("o_tlp: valid fell or the beat changed before it was taken")
                offered = None
            if not self._ready_now and o_valid():
                offered = o_payload()
            if self._ready_now and o_valid():
                hdr, data, nbytes, sop, eop = unpack(o_payload())
                tlp = tlps.add(hdr, data.to_bytes(beat_bytes, "little")[:nbytes], sop, eop)
                if tlp:
                    await self._tx_tlp(*tlp, now)
            if k.tx_pause:
                r = int(rng.random() >= k.tx_pause)
                if r != self._ready_now:
                    self._ready_now = r
                    self.o_ready.set(r)
            elif not self._ready_now:
                self._ready_now = 1
                self.o_ready.set(1)

            # host -> DUT
            rx = self._rx
            if rx_valid and i_ready():
                self._rx_i += 1
                if self._rx_i == len(rx):
                    self._note_delivered(self.codec.unpack(rx[0])[0], now)
                    rx = self._rx = None
            if rx is None:
                rx = self._rx = self._next_rx(now)
                self._rx_i = 0
            if rx is not None and not (k.rx_gap and rng.random() < k.rx_gap):
                beat = rx[self._rx_i]
                if beat != rx_driven or not rx_valid:
                    i_payload(beat)
                    rx_driven = beat
                if not rx_valid:
                    self.i_valid.set(1)
                    rx_valid = 1
            elif rx_valid:
                self.i_valid.set(0)
                rx_valid = 0

    async def _link_chunks(self):
        """The link loop through the chunk bridge: Python runs on an edge only
        when a chunk moves (or waits for room in the bridge)."""
        cc = self.chunk_codec
        port = self._port
        h2d_payload = FastSignal(port("h2d__payload")).set
        h2d_valid = FastSignal(port("h2d__valid")).set
        h2d_ready = FastSignal(port("h2d__ready")).get
        d2h_valid = FastSignal(port("d2h__valid")).get
        d2h_payload = FastSignal(port("d2h__payload")).get
        clk_edge = RisingEdge(self.clk)
        d2h_rise = RisingEdge(port("d2h__valid"))
        room_rise = RisingEdge(port("h2d__ready"))
        offer = None         # chunks of the TLP being offered to the bridge
        offered = False      # h2d.valid is high
        room = True          # h2d.ready as sampled at the last edge
        arriving = False     # d2h.valid as sampled at the last edge
        tlps = _TlpAssembler(self._error, "d2h: a chunk starts a TLP inside another", "d2h: a chunk outside a TLP")
        now = self.cycle()
        while True:
            if offer is None:
                offer = self._next_rx(now)
                self._rx_i = 0
                if offer is not None:
                    h2d_payload(offer[0])
                if (offer is not None) != offered:
                    offered = offer is not None
                    h2d_valid(int(offered))
            if arriving or (offer is not None and room):
                await clk_edge
                now += 1
            else:
                waits = [d2h_rise]
                if offer is not None:
                    waits.append(room_rise)
                else:
                    self._wake.clear()
                    waits.append(self._wake.wait())
                    if self._cpl_heap:
                        delta = self._until_release()
                        if delta > 0:
                            waits.append(Timer(delta, "step"))
                        else:
                            waits = None
                if waits:
                    await AnyOf(*waits)
                await clk_edge
                now = self.cycle()

            if offer is not None:
                room = bool(h2d_ready())
                if room:
                    self._rx_i += 1
                    if self._rx_i == len(offer):
                        self._note_delivered(cc.hdr_of(offer[0]), now)
                        offer = None
                    else:
                        h2d_payload(offer[self._rx_i])
            arriving = bool(d2h_valid())
            if arriving:
                tlp = tlps.add(*cc.unpack(d2h_payload()))
                if tlp:
                    await self._tx_tlp(*tlp, now)
                self.check_bridge()

    def check_bridge(self):
        """Record the stream rules on ``o_tlp`` that the chunk bridge saw broken
        (sticky bits) and were not recorded yet."""
        if not self.chunked:
            return
        bad = self._violations.get()
        for i, what in enumerate(VIOLATIONS):
            if (bad & ~self._seen_bad) >> i & 1:
                self._error(f"o_tlp: {what}")
        self._seen_bad = bad

    def _note_delivered(self, hdr, cycle):
        """Count down the completions of a read as they reach the DUT."""
        self.stats["rx_tlps"] += 1
        for obs in self.rx_observers:
            obs(cycle, hdr)
        if _fmt_type(hdr) in (FMT_TYPE_CPL, FMT_TYPE_CPLD):
            tag = hdr_get(hdr, "cpl.dw2.tag")
            left = self._outstanding.get(tag)
            if left is not None:
                if left <= 1:
                    del self._outstanding[tag]
                else:
                    self._outstanding[tag] = left - 1
