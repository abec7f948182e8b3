"""The BAR0 register map: the single definition used by the RTL register file,
the host driver, the simulation models and the tests.

Registers are little-endian, DWORD-aligned and 32 or 64 bits wide. A 64-bit
register occupies two DWORDs (low half first). Access kinds:

``const``    read-only, fixed at build time (identification, configuration)
``rw``       read/write by the host; the value drives the hardware
``ro``       read-only, driven by the hardware; reading the low DWORD of a 64-bit
             ``ro`` register latches its high DWORD, which a later read of the
             high DWORD returns, so the two halves read as one value
``wo``       write-only strobe: a write hands the written bytes to the hardware
             for one cycle; reads return 0
``counter``  32-bit saturating event counter kept by the register file; cleared
             by ``COUNTER_CLEAR`` and by soft reset

Any byte-enable pattern is honoured on writes. A read of an address that no
register covers returns :data:`UNMAPPED_READ_VALUE` and counts
``ERR_MMIO_UNMAPPED_RD``; a write to such an address, or to a ``const``,
``ro`` or ``counter`` register, changes nothing and counts ``ERR_MMIO_BAD_WR``.

Registers repeated per entry (per queue, completion queue or doorbell page)
form a :class:`RegisterBlock`: one template of registers, ``count`` entries
``stride`` bytes apart. The register file does not hold them: the subsystem
that owns the entries serves the block through a window onto its tables
(block RAM), so a block costs the same logic for 8 entries as for 256. Each
entry's registers still have names (``TXQ3_CTRL``) for the host.
"""

from dataclasses import dataclass, field
from amaranth.lib import enum

__all__ = ["Field", "Register", "RegisterBlock", "RegisterMap", "REGMAP", "regmap", "UNMAPPED_READ_VALUE", "VERSION",
           "MAGIC", "COUNTER_NAMES", "const_values", "reset_values", "DmaStatus"]

#: What a read of an unmapped BAR0 address returns.
UNMAPPED_READ_VALUE = 0xBADC0FFE
#: Register-map version (major, minor, patch).
VERSION = (0, 5, 0)
#: Content of the MAGIC register: "PTLN".
MAGIC = 0x50544C4E

ACCESS_KINDS = ("const", "rw", "ro", "wo", "counter")


class DmaStatus(enum.IntEnum, shape=4):
    """Status of a DMA operation, as the engines report it and ``DMA_TEST_STATUS`` shows it."""
    OK = 0
    UR = 1            # a completion came back Unsupported Request
    CA = 2            # a completion came back Completer Abort
    TIMEOUT = 3       # a completion did not arrive within DMA_CPL_TIMEOUT cycles
    BAD_CPL = 4       # a completion had the wrong length, byte count or address
    BUS_MASTER = 5    # bus mastering is disabled in the command register
    ZERO_LENGTH = 6   # a zero-length operation was requested
    BAD_ARGS = 7      # the request does not fit the NIC-side memory
    POISONED = 8      # a completion came back poisoned (EP set): its data was not used


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int = 1
    doc: str = ""

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    name: str
    addr: int
    access: str
    width: int = 32
    reset: int = 0
    doc: str = ""
    fields: tuple = field(default_factory=tuple)
    block: str = ""     # the RegisterBlock whose window serves it ("": the register file)

    def __post_init__(self):
        if self.access not in ACCESS_KINDS:
            raise ValueError(f"register {self.name}: access must be one of {ACCESS_KINDS}, not {self.access!r}")
        if self.width not in (32, 64):
            raise ValueError(f"register {self.name}: width must be 32 or 64, not {self.width}")
        if self.addr % (self.width // 8):
            raise ValueError(f"register {self.name}: address {self.addr:#x} is not aligned to its width")
        if self.access == "counter" and self.width != 32:
            raise ValueError(f"register {self.name}: counters are 32 bits wide")
        for f in self.fields:
            if f.offset + f.width > self.width:
                raise ValueError(f"register {self.name}: field {f.name} does not fit in {self.width} bits")

    @property
    def dwords(self):
        return self.width // 32

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}; it has "
                       f"{', '.join(f.name for f in self.fields) or 'none'}")

    def pack(self, **values):
        v = 0
        for k, x in values.items():
            f = self.field(k)
            if x >> f.width:
                raise ValueError(f"{self.name}.{k} is {f.width} bits wide; {x:#x} does not fit")
            v |= x << f.offset
        return v

    def unpack(self, value):
        return {f.name: (value >> f.offset) & ((1 << f.width) - 1) for f in self.fields}


def _named(items, name, missing):
    for x in items:
        if x.name == name:
            return x
    raise KeyError(f"{missing} {name!r}")


@dataclass(frozen=True)
class RegisterBlock:
    """Registers repeated for ``count`` entries, ``stride`` bytes apart from
    ``base``. ``registers`` is the template: addresses relative to an entry,
    names without the entry's prefix. Entry ``i``'s register ``R`` is named
    ``{prefix}{i}_{R}``."""
    name: str
    prefix: str
    base: int
    stride: int
    count: int
    registers: tuple

    def __post_init__(self):
        if self.stride & (self.stride - 1) or self.stride < 4:
            raise ValueError(f"block {self.name}: stride {self.stride:#x} is not a power of two")
        if self.base % self.stride:
            raise ValueError(f"block {self.name}: base {self.base:#x} is not aligned to its stride")
        for r in self.registers:
            if r.addr + r.width // 8 > self.stride:
                raise ValueError(f"block {self.name}: register {r.name} does not fit in the stride")

    @property
    def size(self):
        return self.count * self.stride

    def reg(self, name):
        return _named(self.registers, name, f"block {self.name} has no register")

    def at_offset(self, dw):
        """``(template register, half)`` at DWORD ``dw`` of an entry, or ``None``."""
        for r in self.registers:
            if r.addr // 4 <= dw < r.addr // 4 + r.dwords:
                return r, dw - r.addr // 4
        return None

    def flatten(self):
        return [Register(f"{self.prefix}{i}_{r.name}", self.base + i * self.stride + r.addr, r.access, r.width,
                         r.reset, r.doc, r.fields, block=self.name)
                for i in range(self.count) for r in self.registers]


class RegisterMap:
    def __init__(self, registers, blocks=()):
        self.blocks = tuple(blocks)
        registers = list(registers)
        for b in self.blocks:
            registers += b.flatten()
        self.registers = tuple(registers)
        self._by_name = {}
        self._by_dw = {}
        for r in self.registers:
            if r.name in self._by_name:
                raise ValueError(f"register name {r.name} is used twice")
            self._by_name[r.name] = r
            for i in range(r.dwords):
                dw = r.addr // 4 + i
                if dw in self._by_dw:
                    raise ValueError(f"register {r.name} overlaps {self._by_dw[dw][0].name} at {dw * 4:#x}")
                self._by_dw[dw] = (r, i)

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register named {name!r}") from None

    def __iter__(self):
        return iter(self.registers)

    def __contains__(self, name):
        return name in self._by_name

    def block(self, name):
        return _named(self.blocks, name, "no register block named")

    def at_dword(self, dw_index):
        """``(register, half)`` covering DWORD ``dw_index`` of BAR0, or ``None``."""
        return self._by_dw.get(dw_index)

    @property
    def size(self):
        """Bytes of BAR0 that the register file decodes (a power of two)."""
        end = max(r.addr + r.width // 8 for r in self.registers)
        return 1 << (end - 1).bit_length()


def _F(name, offset, width=1, doc=""):
    return Field(name, offset, width, doc)


_COUNTERS = [
    ("ERR_MMIO_UNMAPPED_RD", "MMIO reads of unmapped BAR0 addresses"),
    ("ERR_MMIO_BAD_WR", "MMIO writes to unmapped or read-only addresses (dropped)"),
    ("ERR_MMIO_BAD_REQ", "MMIO requests refused: too long, or not a memory request (UR/CA sent or dropped)"),
    ("ERR_CPL_UR", "read completions with Unsupported Request status"),
    ("ERR_CPL_CA", "read completions with Completer Abort status"),
    ("ERR_CPL_TIMEOUT", "read requests whose completions did not arrive in time"),
    ("ERR_CPL_BAD_TAG", "completions whose tag matches no outstanding read (dropped)"),
    ("ERR_CPL_BAD_LEN", "completions with a wrong length, byte count or lower address (dropped)"),
    ("ERR_DMA_BUS_MASTER", "DMA operations refused because bus mastering is off"),
    ("ERR_DMA_ZERO_LEN", "zero-length DMA operations refused"),
    ("DMA_RD_OPS", "DMA read operations completed"),
    ("DMA_RD_TLPS", "MemRd TLPs sent"),
    ("DMA_RD_CPLS", "completion TLPs accepted by the read engine"),
    ("DMA_WR_OPS", "DMA write operations completed"),
    ("DMA_WR_TLPS", "MemWr TLPs sent for DMA"),
    ("MSI_SENT", "MSI messages sent"),
    ("MSI_BLOCKED", "interrupts not sent because MSI or bus mastering is disabled"),
    ("TX_FRAMES", "frames sent on the wire"),
    ("RX_FRAMES", "frames received from the wire and delivered to a queue"),
    ("RX_DROP_FCS", "received frames dropped: bad FCS"),
    ("RX_DROP_RUNT", "received frames dropped: shorter than 64 bytes"),
    ("RX_DROP_OVERSIZE", "received frames dropped: longer than the maximum frame"),
    ("RX_DROP_OVERFLOW", "received frames dropped: no room in the receive buffer"),
    ("RX_DROP_NO_BUF", "received frames dropped: their queue had no buffer posted"),
    ("RX_DROP_DISABLED", "received frames dropped: their queue is disabled or in error"),
    ("DESC_ERR_PROTECTION", "descriptors outside their protection domain (not DMA'd)"),
    ("DESC_ERR_ZERO_LEN", "descriptors of zero length (not DMA'd)"),
    ("DB_IGNORED", "queue doorbells ignored: disabled queue, or producer index not in [fetched, head + ring size]"),
    ("QUEUE_FAULTS", "queues stopped in error (descriptor fetch failed, chain cannot end)"),
    ("CPL_DROPPED", "completions whose completion queue was disabled after the chain started, dropped"),
    ("CQ_IRQS", "interrupts raised by completion queues"),
    ("TX_TOO_LONG", "frames not sent: longer than the maximum frame (not DMA'd)"),
    ("ERR_CPL_POISONED", "completions with EP set: their data was not used, their request failed"),
    ("RX_DROP_CQ_FULL", "received frames dropped: their queue's completion queue had no free slot"),
    ("CQ_DB_IGNORED", "completion queue doorbells ignored: disabled, or consumer index not in [consumed, written]"),
    ("DMA_WR_STATUS_WAITS", "cycles a DMA write status waited for its client (the deadlock rule: stays 0)"),
    ("RX_ENGINE_FRAMES", "received frames of RX_ENGINE_ETHERTYPE handed to the engine port (no engine yet: "
     "dropped)"),
]

_FIXED = [
    # Identification and build configuration.
    Register("ID", 0x0000, "const", doc="device ID (31:16) and vendor ID (15:0)",
             fields=(_F("VENDOR", 0, 16), _F("DEVICE", 16, 16))),
    Register("VERSION", 0x0004, "const", doc="register map version",
             fields=(_F("PATCH", 0, 8), _F("MINOR", 8, 8), _F("MAJOR", 16, 8))),
    Register("MAGIC", 0x0008, "const", doc='"PTLN"'),
    Register("BUILD_DATAPATH", 0x0010, "const",
             fields=(_F("DATA_WIDTH", 0, 16, "bits per beat"), _F("DMA_TAGS", 16, 16))),
    Register("BUILD_DMA", 0x0014, "const",
             fields=(_F("MAX_PAYLOAD", 0, 16, "bytes"), _F("MAX_READ_REQ", 16, 16, "bytes"))),
    Register("BUILD_READ_BUFFER", 0x0018, "const", doc="bytes of DMA read reorder buffer"),
    Register("BUILD_TEST_MEM", 0x001C, "const", doc="bytes of DMA self-test memory"),
    Register("BUILD_MISC", 0x0020, "const",
             fields=(_F("MMIO_MAX_DW", 0, 8), _F("MSI_VECTORS", 8, 8), _F("BAR0_LOG2", 16, 8))),
    Register("BUILD_QUEUES", 0x0024, "const",
             fields=(_F("NUM_QUEUES", 0, 9), _F("NUM_CQS", 9, 9), _F("DESC_CACHE", 18, 7), _F("NUM_MRS", 25, 7))),
    Register("BUILD_ETH", 0x0028, "const", fields=(_F("MAX_FRAME", 0, 16),),
             doc="largest frame accepted from the wire, FCS included"),
    # Scratch, control and status.
    Register("SCRATCH", 0x0040, "rw", doc="scratch register"),
    Register("SCRATCH64", 0x0048, "rw", width=64, doc="64-bit scratch register"),
    Register("CONTROL", 0x0050, "rw", fields=(_F("IRQ_ENABLE", 0, 1, "allow the NIC to send MSIs"),)),
    Register("STATUS", 0x0054, "ro", fields=(
        _F("RESET_BUSY", 0, 1, "a soft reset, or the register tables returning to their reset values (after "
           "any reset, one cycle per entry), is in progress: wait before writing"),
        _F("BUS_MASTER", 1), _F("MSI_ENABLE", 2),
        _F("MPS", 4, 3, "max payload size in use, 128 << MPS bytes"),
        _F("MRRS", 8, 3, "max read request size in use, 128 << MRRS bytes"),
        _F("DMA_RD_BUSY", 12), _F("DMA_WR_BUSY", 13),
        _F("REQUESTER_ID", 16, 16))),
    Register("SOFT_RESET", 0x0058, "wo", fields=(_F("RESET", 0),),
             doc="drain, then reset the DMA engines, counters and rw registers"),
    Register("COUNTER_CLEAR", 0x005C, "wo", fields=(_F("CLEAR", 0),)),
    Register("CYCLE_COUNT", 0x0060, "ro", width=64, doc="free-running core clock cycle counter"),
    Register("DMA_CPL_TIMEOUT", 0x0068, "rw", doc="read completion timeout in cycles (0: never)"),
    Register("MSI_TRIGGER", 0x006C, "wo", fields=(_F("VECTOR", 0, 5),), doc="send one MSI now"),
    Register("QUEUE_CONTROL", 0x0070, "rw", fields=(
        _F("RX_BACKPRESSURE", 0, 1, "hold a frame whose queue has no buffer (instead of dropping it)"),)),
    Register("RX_ENGINE_ETHERTYPE", 0x0074, "rw", fields=(
        _F("ETHERTYPE", 0, 16, "received frames of this EtherType go to the engine port, not the queues "
           "(0: none)"),)),
    # Event and error counters.
    *[Register(name, 0x0100 + 4 * i, "counter", doc=doc) for i, (name, doc) in enumerate(_COUNTERS)],
    # DMA self-test: moves data between host memory and on-chip NIC memory.
    Register("DMA_TEST_HOST_ADDR", 0x0200, "rw", width=64),
    Register("DMA_TEST_NIC_ADDR", 0x0208, "rw", doc="byte offset in NIC memory, beat-aligned"),
    Register("DMA_TEST_LEN", 0x020C, "rw", doc="bytes per operation"),
    Register("DMA_TEST_COUNT", 0x0210, "rw", reset=1, doc="operations per run, issued back to back"),
    Register("DMA_TEST_STRIDE", 0x0214, "rw", doc="host address increment between operations"),
    Register("DMA_TEST_CTRL", 0x0218, "wo", fields=(
        _F("START", 0), _F("WRITE", 1, 1, "0: host to NIC (DMA read), 1: NIC to host (DMA write)"),
        _F("IRQ", 2, 1, "send MSI DMA_TEST_VECTOR when the run ends"))),
    Register("DMA_TEST_STATUS", 0x021C, "ro", fields=(
        _F("BUSY", 0), _F("ERROR", 1), _F("FIRST_ERROR", 4, 4, "DmaStatus of the first failed operation"))),
    Register("DMA_TEST_CYCLES", 0x0220, "ro", doc="cycles from START to the end of the last operation"),
    Register("DMA_TEST_DONE", 0x0224, "ro", doc="operations finished in this run"),
    Register("DMA_TEST_ERRORS", 0x0228, "ro", doc="operations that ended with an error in this run"),
    Register("DMA_TEST_VECTOR", 0x022C, "rw", fields=(_F("VECTOR", 0, 5),)),
]

#: Where the per-queue blocks start (room for 256 entries each), and their stride.
TXQ_BASE, RXQ_BASE, CQ_BASE, MR_BASE, QUEUE_STRIDE = 0x4000, 0x6000, 0x8000, 0x1000, 0x20
#: Doorbell pages: one 4 KiB page each, transmit queues, then receive queues,
#: then completion queues, from DOORBELL_BASE on.
DOORBELL_BASE, DOORBELL_PAGE = 0x10000, 0x1000


def _queue_block(kind, base, n):
    return RegisterBlock(kind, kind, base, QUEUE_STRIDE, n, (
        Register("BASE", 0, "rw", width=64, doc=f"{kind} ring address in host memory"),
        Register("CTRL", 8, "rw", fields=(
            _F("ENABLE", 0, 1, "1 starts an incarnation with both indices at 0 once the last one "
               "has drained (ERROR.ACTIVE); 0 stops it"),
            _F("LOG_SIZE", 4, 4, "ring of 2**LOG_SIZE descriptors (1 .. 15), taken when the incarnation starts"),
            _F("CQ", 8, 8, "completion queue, taken when the incarnation starts"),
            _F("PD", 16, 4, "protection domain, taken when the incarnation starts"))),
        Register("STATE", 12, "ro", fields=(
            _F("HEAD", 0, 16, "next descriptor the NIC will complete"),
            _F("TAIL", 16, 16, "producer index from the last doorbell"))),
        Register("ERROR", 16, "ro", fields=(
            _F("CODE", 0, 4, "0: running; DmaStatus of a failed descriptor fetch; 15: a chain that cannot "
               "end within the ring or the descriptor cache"),
            _F("ACTIVE", 8, 1, "an incarnation is running (LOG_SIZE, CQ and PD were taken when it started) "
               "and CTRL has not been written since"),
            _F("DRAINING", 9, 1, "fetches, chains or completions of a stopped incarnation are in flight, "
               "or a CTRL write has not been taken yet"))),
    ))


def _cq_block(n):
    return RegisterBlock("CQ", "CQ", CQ_BASE, QUEUE_STRIDE, n, (
        Register("BASE", 0, "rw", width=64, doc="completion ring address in host memory"),
        Register("CTRL", 8, "rw", fields=(
            _F("ENABLE", 0, 1, "1 starts an incarnation with both indices at 0 once the last one "
               "has drained (STATUS.ACTIVE); 0 stops it"),
            _F("LOG_SIZE", 4, 4, "ring of 2**LOG_SIZE completions (1 .. 15)"),
            _F("VECTOR", 8, 5, "MSI vector"),
            _F("MOD_COUNT", 16, 16, "interrupt once this many completions are unconsumed (0: 1)"))),
        Register("MOD_TIME", 12, "rw",
                 doc="or once a completion has waited this many cycles (0: no timer); CTRL and MOD_TIME are "
                     "taken when the incarnation starts"),
        Register("STATE", 16, "ro", fields=(
            _F("PROD", 0, 16, "completions written"), _F("CONS", 16, 16, "consumer index from the doorbell"))),
        Register("STATUS", 20, "ro", fields=(
            _F("ARMED", 0, 1), _F("ACTIVE", 1, 1, "an incarnation is running"),
            _F("DRAINING", 2, 1, "completions promised to a stopped incarnation are still in flight"))),
    ))


def _mr_registers(n):
    regs = []
    for k in range(n):
        a = MR_BASE + k * QUEUE_STRIDE
        regs += [
            Register(f"MR{k}_BASE", a, "rw", width=64, doc="first byte of the memory region"),
            Register(f"MR{k}_LEN", a + 8, "rw", width=64, doc="bytes in the memory region"),
            Register(f"MR{k}_CTRL", a + 16, "rw", fields=(
                _F("ENABLE", 0, 1), _F("READ", 1, 1, "transmit queues may read it"),
                _F("WRITE", 2, 1, "receive queues may write it"), _F("PD", 4, 4, "protection domain"))),
        ]
    return regs


def _doorbell_blocks(nq, ncq):
    """One 4 KiB page per doorbell (map it into one process): transmit queues,
    then receive queues, then completion queues."""
    q_db = Register("DB", 0, "wo", fields=(_F("TAIL", 0, 16, "new producer index"),),
                    doc="doorbell, alone in its 4 KiB page")
    cq_db = Register("DB", 0, "wo", fields=(_F("CONS", 0, 16, "new consumer index"),
                                            _F("ARM", 31, 1, "interrupt when the moderation rule is next met")),
                     doc="doorbell, alone in its 4 KiB page")
    return [RegisterBlock("TXQ_DB", "TXQ", DOORBELL_BASE, DOORBELL_PAGE, nq, (q_db,)),
            RegisterBlock("RXQ_DB", "RXQ", DOORBELL_BASE + nq * DOORBELL_PAGE, DOORBELL_PAGE, nq, (q_db,)),
            RegisterBlock("CQ_DB", "CQ", DOORBELL_BASE + 2 * nq * DOORBELL_PAGE, DOORBELL_PAGE, ncq, (cq_db,))]


_MAPS = {}


def regmap(config):
    """The register map of a build with ``config`` (cached)."""
    key = (config.num_queues, config.num_cqs, config.num_mrs)
    if key not in _MAPS:
        blocks = [_queue_block("TXQ", TXQ_BASE, config.num_queues), _queue_block("RXQ", RXQ_BASE, config.num_queues),
                  _cq_block(config.num_cqs)] + _doorbell_blocks(config.num_queues, config.num_cqs)
        _MAPS[key] = RegisterMap(_FIXED + _mr_registers(config.num_mrs), blocks)
    return _MAPS[key]


def _default_config():
    from .config import NicConfig
    return NicConfig()


#: The register map of the default build. Registers below 0x1000 are the same
#: in every build; use :func:`regmap` for the per-queue ones of another build.
REGMAP = regmap(_default_config())

COUNTER_NAMES = tuple(name for name, _ in _COUNTERS)


def const_values(config):
    """Values of the ``const`` registers for a build with ``config``."""
    r = REGMAP
    return {
        "ID": r["ID"].pack(VENDOR=config.vendor_id, DEVICE=config.device_id),
        "VERSION": r["VERSION"].pack(MAJOR=VERSION[0], MINOR=VERSION[1], PATCH=VERSION[2]),
        "MAGIC": MAGIC,
        "BUILD_DATAPATH": r["BUILD_DATAPATH"].pack(DATA_WIDTH=config.data_width, DMA_TAGS=config.dma_tags),
        "BUILD_DMA": r["BUILD_DMA"].pack(MAX_PAYLOAD=config.max_payload_size,
                                        MAX_READ_REQ=config.max_read_request_size),
        "BUILD_READ_BUFFER": config.dma_read_buffer,
        "BUILD_TEST_MEM": config.dma_test_mem,
        "BUILD_MISC": r["BUILD_MISC"].pack(MMIO_MAX_DW=config.mmio_max_dw, MSI_VECTORS=config.msi_vectors,
                                          BAR0_LOG2=config.bar0_size.bit_length() - 1),
        "BUILD_QUEUES": r["BUILD_QUEUES"].pack(NUM_QUEUES=config.num_queues, NUM_CQS=config.num_cqs,
                                              DESC_CACHE=config.desc_cache, NUM_MRS=config.num_mrs),
        "BUILD_ETH": r["BUILD_ETH"].pack(MAX_FRAME=config.max_frame),
    }


def reset_values(config):
    """Reset values of the ``rw`` registers (some depend on the configuration)."""
    out = {r.name: r.reset for r in regmap(config) if r.access == "rw"}
    out["DMA_CPL_TIMEOUT"] = config.cpl_timeout
    return out


def format_table(rmap=REGMAP):
    """The register map as a text table (``python -m rtl.regmap``)."""
    lines = [f"{'offset':>8}  {'name':<22} {'access':<8} {'bits':>4}  description"]
    for r in rmap:
        lines.append(f"{r.addr:#08x}  {r.name:<22} {r.access:<8} {r.width:>4}  {r.doc}")
        for f in r.fields:
            hi = f.offset + f.width - 1
            bits = f"{hi}:{f.offset}" if f.width > 1 else f"{f.offset}"
            lines.append(f"{'':>8}  {'  .' + f.name:<22} {'':<8} {bits:>5}  {f.doc}")
    lines.append(f"unmapped reads return {UNMAPPED_READ_VALUE:#010x}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table())
