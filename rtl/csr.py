"""BAR0 register file, generated from :data:`rtl.regmap.REGMAP`, and the
register tables that serve its register blocks.

The register file holds the registers of the fixed map in flip-flops. A
register block (per-queue registers, doorbell pages) is served by a
:class:`RegisterTable` that its owner asks for (``add_table``) while it is
built: the table keeps the block's ``rw`` registers in memories, one entry per
queue, takes its ``ro`` registers from the owner for the entry being read, and
hands ``wo`` writes to the owner with the entry's number. The register file
decodes only which table an address falls in.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .lib.counters import CounterTable
from .lib.ram import sync_read
from .regmap import UNMAPPED_READ_VALUE, const_values, regmap, reset_values

__all__ = ["CsrBus", "CsrWindow", "StrobeSignature", "RegisterFile", "RegisterTable", "port_name", "pack_fields",
           "get_field"]


def pack_fields(reg, **values):
    """An Amaranth value of ``reg.width`` bits with each named field set to the
    given expression (truncated or zero-extended to the field) and the rest zero."""
    parts, pos = [], 0
    for name in values:
        reg.field(name)  # raises for unknown names
    for f in sorted(reg.fields, key=lambda f: f.offset):
        if f.name not in values:
            continue
        if f.offset > pos:
            parts.append(Const(0, f.offset - pos))
        parts.append(Cat(values[f.name], Const(0, f.width))[:f.width])
        pos = f.offset + f.width
    if pos < reg.width:
        parts.append(Const(0, reg.width - pos))
    return Cat(*parts)


def get_field(value, reg, name):
    """Field ``name`` of register ``reg`` out of the Amaranth value ``value``."""
    f = reg.field(name)
    return value[f.offset:f.offset + f.width]


#: Cycles from a read strobe on ``CsrBus`` to its data: the register file
#: answers from flip-flops (its tables and counters from block RAM, with
#: arithmetic after it); each answer is registered, then their sum.
READ_LATENCY = 3


class CsrBus(wiring.Signature):
    """DWORD-wide register bus, initiator side.

    addr    DWORD index within BAR0
    r_stb   read the DWORD at ``addr``; ``r_data`` holds it ``READ_LATENCY``
            cycles later
    w_stb   write ``w_data`` to ``addr`` under the byte enables ``w_be``
    """

    def __init__(self, addr_width):
        super().__init__({
            "addr": Out(addr_width),
            "r_stb": Out(1),
            "w_stb": Out(1),
            "w_be": Out(4),
            "w_data": Out(32),
            "r_data": In(32),
        })


class CsrWindow(wiring.Signature):
    """The register file's bus into one register table, register-file side.

    entry, offset  the entry addressed and the DWORD within it
    r_stb, w_stb, w_be, w_data  as on :class:`CsrBus`; ``r_data`` on the next cycle
    bad            In(1), same cycle: no register at ``offset``, or (writes) not a writable one
    """

    def __init__(self, entry_bits, offset_bits):
        super().__init__({
            "entry": Out(max(1, entry_bits)), "offset": Out(max(1, offset_bits)),
            "r_stb": Out(1), "w_stb": Out(1), "w_be": Out(4), "w_data": Out(32),
            "r_data": In(32), "bad": In(1),
        })


def _bits(n):
    return max(1, (n - 1).bit_length())


def _byte_mask(be):
    """The 32-bit mask of the bytes that ``be`` enables."""
    return Cat(*[Mux(be[k], Const(0xFF, 8), Const(0, 8)) for k in range(4)])


class _SyncReadPort:
    """What :meth:`RegisterTable.read_port` hands out for synchronous reads:
    the owner drives ``addr`` (and ``en``, 1 unless driven); ``data`` holds
    the entry on the next cycle."""

    def __init__(self, shape, addr_bits, name):
        self.addr = Signal(addr_bits, name=f"{name}_rd_addr")
        self.en = Signal(init=1, name=f"{name}_rd_en")
        self.data = Signal(shape, name=f"{name}_rd_data")


class RegisterTable(wiring.Component):
    """Serves a :class:`~rtl.regmap.RegisterBlock` through the register file's window.

    ``rw`` registers live in one memory each (``count`` entries; a read port for
    the owner comes from :meth:`read_port`; :meth:`written` tells it which
    entry was just written). ``ro`` registers are inputs
    ``ro_<name>``: the owner drives them with the value of entry ``r_entry``
    (the entry being read, this cycle), or, for those it marks with
    :meth:`late`, on the next cycle (read from a memory addressed by
    ``r_entry``). ``wo`` registers are ``wo_<name>``
    strobes, one cycle after the write, with the entry and the written bytes
    (others zero). After reset, and after ``clear``, the table returns every
    ``rw`` register of every entry to its reset value, one entry per cycle;
    ``busy`` is high until it has (writes meanwhile are lost).
    """

    def __init__(self, block):
        self.block = block
        self._ob = _bits(block.stride // 4)
        members = {"win": In(CsrWindow(_bits(block.count), self._ob)), "clear": In(1), "busy": Out(1),
                   "r_entry": Out(_bits(block.count))}
        self._mems = {}
        self._late = set()
        self._written = {}
        self._comb_read = set()
        self._sync_reads = []
        for r in block.registers:
            n = port_name(r)
            if r.access == "rw":
                self._mems[r.name] = Memory(shape=r.width, depth=block.count, init=[r.reset] * block.count)
            elif r.access == "ro":
                members[f"ro_{n}"] = In(r.width)
            elif r.access == "wo":
                members[f"wo_{n}"] = Out(data.StructLayout({"stb": 1, "entry": _bits(block.count), "data": r.width}))
            else:
                raise ValueError(f"block {block.name}: register {r.name} of kind {r.access} cannot be in a table")
        super().__init__(members)

    def read_port(self, name, domain="sync"):
        """A read port on ``rw`` register ``name``'s memory for the owner
        (before elaboration): ``addr``, ``en`` and, a cycle later, ``data``.
        A register read only synchronously lives in block RAM; its value read
        in the cycle the host writes it is undefined (only the driver writes
        these registers, and not while the entry is in use)."""
        if domain == "comb":
            self._comb_read.add(name)
            return self._mems[name].read_port(domain="comb")
        port = _SyncReadPort(self._mems[name].shape, _bits(self.block.count),
                             f"{self.block.name.lower()}_{name.lower()}")
        self._sync_reads.append((name, port))
        return port

    def late(self, reg_name):
        """The owner drives ``ro`` register ``reg_name`` of entry ``r_entry``
        one cycle later (from a synchronous memory read); before elaboration."""
        reg = self.block.reg(reg_name)
        if reg.access != "ro" or reg.dwords != 1:
            raise ValueError(f"{self.block.name}.{reg_name}: only 32-bit ro registers can be late")
        self._late.add(reg_name)

    def written(self, reg_name):
        """A strobe, a cycle after the host writes ``rw`` register
        ``reg_name`` of an entry, with the entry (``stb``, ``entry``); for the
        owner, before elaboration."""
        reg = self.block.reg(reg_name)
        if reg.access != "rw":
            raise ValueError(f"{self.block.name}.{reg_name}: only rw registers have a write strobe")
        if reg_name not in self._written:
            self._written[reg_name] = Signal(data.StructLayout({"stb": 1, "entry": _bits(self.block.count)}),
                                             name=f"{self.block.name.lower()}_{reg_name.lower()}_written")
        return self._written[reg_name]

    def elaborate(self, platform):
        m = Module()
        b, w = self.block, self.win
        m.d.comb += self.r_entry.eq(w.entry)
        hit_r, hit_w = [], []
        r_sel = Signal(len(b.registers) + 1)    # one-hot, registered: whose DWORD the read returns
        r_half = Signal()
        r_val = []
        # After reset and after ``clear``, a sweep returns every entry to its
        # reset values (a memory keeps its contents through a reset).
        clr_entry = Signal(_bits(b.count) + 1)
        sweeping = Signal(init=1)
        with m.If(self.clear):
            m.d.sync += [sweeping.eq(1), clr_entry.eq(0)]
        with m.Elif(sweeping):
            m.d.sync += clr_entry.eq(clr_entry + 1)
            with m.If(clr_entry == b.count - 1):
                m.d.sync += sweeping.eq(0)
        m.d.comb += self.busy.eq(sweeping | self.clear)
        be_mask = _byte_mask(w.w_be)
        for i, r in enumerate(b.registers):
            n = port_name(r)
            lo = r.addr // 4
            at = (w.offset >= lo) & (w.offset < lo + r.dwords)
            half = (w.offset - lo)[:1] if r.dwords > 1 else Const(0, 1)
            hit_r.append(at)
            if r.access in ("rw", "wo"):
                hit_w.append(at)
            with m.If(w.r_stb):
                m.d.sync += [r_sel[i].eq(at)]
            if r.access == "rw":
                mem = self._mems[r.name]
                m.submodules[f"mem_{n}"] = mem
                wp = mem.write_port(granularity=8)
                if r.name not in self._comb_read:
                    mem.attrs.update({"ram_style": "block", "no_rw_check": 1})
                for name, port in self._sync_reads:
                    if name == r.name:
                        m.d.comb += port.data.eq(sync_read(m, mem, port.addr, en=port.en))
                stb = w.w_stb & at
                if r.name in self._written:
                    ev = self._written[r.name]
                    m.d.sync += [ev.stb.eq(stb & ~self.busy), ev.entry.eq(w.entry)]
                with m.If(self.busy):
                    m.d.comb += [wp.addr.eq(clr_entry), wp.data.eq(r.reset), wp.en.eq(-1)]
                with m.Else():
                    m.d.comb += [wp.addr.eq(w.entry), wp.data.eq(Cat(w.w_data, w.w_data) if r.dwords > 1 else w.w_data),
                                 wp.en.eq(Mux(stb, Cat(w.w_be, Const(0, 4)) << (4 * half) if r.dwords > 1 else w.w_be,
                                              0))]
                rd = sync_read(m, mem, w.entry, en=w.r_stb)
                r_val.append(rd.word_select(r_half, 32) if r.dwords > 1 else rd)
            elif r.access == "ro" and r.name in self._late:
                r_val.append(getattr(self, f"ro_{n}"))
            elif r.access == "ro":
                held = Signal(r.width, name=f"ro_{n}_q")
                with m.If(w.r_stb & at):
                    m.d.sync += held.eq(getattr(self, f"ro_{n}"))
                r_val.append(held.word_select(r_half, 32) if r.dwords > 1 else held)
            else:
                wo = getattr(self, f"wo_{n}")
                m.d.sync += wo.stb.eq(w.w_stb & at)
                with m.If(w.w_stb & at):
                    written = w.w_data & be_mask
                    m.d.sync += [wo.entry.eq(w.entry),
                                 wo.data.eq((written << (32 * half)) if r.dwords > 1 else written)]
                r_val.append(Const(0, 32))
            with m.If(w.r_stb & at):
                m.d.sync += r_half.eq(half)
        out = Const(0, 32)
        for i, v in enumerate(r_val):
            out = out | Mux(r_sel[i], v, 0)
        m.d.comb += [w.r_data.eq(out),
                     w.bad.eq(Mux(w.w_stb, ~Cat(*hit_w).any() if hit_w else 1, ~Cat(*hit_r).any()))]
        return m


class StrobeSignature(wiring.Signature):
    """A write-only register as seen by the hardware: ``stb`` is high for one
    cycle after a write, ``data`` holds the written bytes (others zero)."""

    def __init__(self, width):
        super().__init__({"stb": Out(1), "data": Out(width)})


def port_name(reg):
    return reg.name.lower()


class RegisterFile(wiring.Component):
    """The register file.

    Ports, one per register of the map (named in lower case):
    ``rw`` registers are outputs holding the value, ``ro`` registers are inputs,
    ``wo`` registers are :class:`StrobeSignature` outputs and ``counter``
    registers are increment inputs (one count per cycle they are high).

    bus    In(CsrBus): register accesses from the MMIO engine
    clear  In(1): return ``rw`` registers to their reset values and zero the counters
    busy   Out(1): register tables are returning to their reset values (after reset or ``clear``)
    """

    def __init__(self, config, rmap=None):
        self._config = config
        self._regmap = rmap or regmap(config)
        self._addr_width = (config.bar0_size // 4 - 1).bit_length()
        self._tables = {}
        self._elaborated = False
        members = {"bus": In(CsrBus(self._addr_width)), "clear": In(1), "busy": Out(1)}
        for reg in self._regmap:
            if reg.block:
                continue
            if reg.access == "rw":
                members[port_name(reg)] = Out(reg.width)
            elif reg.access == "ro":
                members[port_name(reg)] = In(reg.width)
            elif reg.access == "wo":
                members[port_name(reg)] = Out(StrobeSignature(reg.width))
            elif reg.access == "counter":
                members[port_name(reg)] = In(1)
        super().__init__(members)

    def add_table(self, block_name):
        """The :class:`RegisterTable` serving register block ``block_name``, for
        the subsystem that owns its entries (before elaboration)."""
        if self._elaborated:
            raise RuntimeError(f"register table {block_name} requested after the register file was elaborated")
        if block_name in self._tables:
            raise ValueError(f"register block {block_name} already has an owner")
        table = self._tables[block_name] = RegisterTable(self._regmap.block(block_name))
        return table

    def elaborate(self, platform):
        self._elaborated = True
        m = Module()
        bus = self.bus
        consts = const_values(self._config)
        resets = reset_values(self._config)

        counter_clear = Signal()
        unmapped_rd = Signal()
        bad_wr = Signal()
        counters = []

        # Storage and hardware-side behaviour.
        values = {}
        for reg in self._regmap:
            if reg.block:
                continue
            port = getattr(self, port_name(reg), None)
            if reg.access == "const":
                values[reg.name] = Const(consts[reg.name], reg.width)
            elif reg.access == "rw":
                store = Signal(reg.width, name=f"r_{port_name(reg)}", init=resets[reg.name])
                m.d.comb += port.eq(store)
                values[reg.name] = store
            elif reg.access == "ro":
                values[reg.name] = port
            elif reg.access == "wo":
                m.d.sync += port.stb.eq(0)
                values[reg.name] = Const(0, reg.width)
            elif reg.access == "counter":
                inc = port
                if reg.name == "ERR_MMIO_UNMAPPED_RD":
                    inc = port | unmapped_rd
                elif reg.name == "ERR_MMIO_BAD_WR":
                    inc = port | bad_wr
                counters.append((reg, inc))
        m.d.comb += counter_clear.eq(self.counter_clear.stb & self.counter_clear.data[0])

        # Counters live in a memory, at consecutive DWORDs.
        c0 = counters[0][0].addr // 4
        if [r.addr // 4 for r, _ in counters] != list(range(c0, c0 + len(counters))):
            raise ValueError("counter registers must occupy consecutive DWORDs")
        m.submodules.counters = ctab = CounterTable(len(counters))
        in_ctr = Signal()
        m.d.comb += [ctab.inc.eq(Cat(*[inc for _, inc in counters])), ctab.clear.eq(self.clear | counter_clear),
                     in_ctr.eq((bus.addr >= c0) & (bus.addr < c0 + len(counters))),
                     ctab.r_addr.eq(bus.addr - c0), ctab.r_stb.eq(bus.r_stb & in_ctr)]
        was_ctr = Signal()
        m.d.sync += was_ctr.eq(bus.r_stb & in_ctr)

        # Register tables: the address range of each block goes to its table.
        in_table = []
        table_rd = []
        for name, table in self._tables.items():
            m.submodules[f"table_{name.lower()}"] = table
            b = table.block
            base_dw, stride_dw = b.base // 4, b.stride // 4
            rel = Signal(self._addr_width, name=f"{name.lower()}_rel")
            m.d.comb += rel.eq(bus.addr - base_dw)
            inside = Signal(name=f"{name.lower()}_in")
            m.d.comb += inside.eq((bus.addr >= base_dw) & (bus.addr < base_dw + b.count * stride_dw))
            w = table.win
            sh = (stride_dw - 1).bit_length()
            m.d.comb += [w.entry.eq(rel >> sh), w.offset.eq(rel[:max(1, sh)] if sh else 0),
                         w.r_stb.eq(bus.r_stb & inside), w.w_stb.eq(bus.w_stb & inside),
                         w.w_be.eq(bus.w_be), w.w_data.eq(bus.w_data), table.clear.eq(self.clear)]
            was = Signal(name=f"{name.lower()}_rd")
            m.d.sync += was.eq(bus.r_stb & inside & ~w.bad)
            in_table.append(inside)
            table_rd.append((was, w.r_data))
            with m.If(bus.r_stb & inside & w.bad):
                m.d.comb += unmapped_rd.eq(1)
            with m.If(bus.w_stb & inside & w.bad):
                m.d.comb += bad_wr.eq(1)
        any_table = Cat(*in_table).any() if in_table else Const(0)
        m.d.comb += self.busy.eq(Cat(*[t.busy for t in self._tables.values()]).any() if self._tables else 0)

        # Reads: READ_LATENCY cycles (the tables and counters answer on the
        # next cycle; what each answers is registered, and their sum is
        # registered on the way out).
        r_data = Signal(32)
        r_fixed = Signal(32)
        m.d.sync += r_fixed.eq(r_data)
        total = r_fixed
        for k, (was, d) in enumerate(table_rd + [(was_ctr, ctab.r_data)]):
            a = Signal(32, name=f"r_answer_{k}")
            a_was = Signal(name=f"r_answer_{k}_was")
            m.d.sync += [a.eq(d), a_was.eq(was)]
            total = total | Mux(a_was, a, 0)
        m.d.sync += bus.r_data.eq(total)
        latches = {}
        with m.If(bus.r_stb & ~any_table & ~in_ctr):
            with m.Switch(bus.addr):
                for reg in self._regmap:
                    if reg.block or reg.access == "counter":
                        continue
                    for half in range(reg.dwords):
                        with m.Case(reg.addr // 4 + half):
                            value = values[reg.name]
                            if reg.access == "ro" and reg.width == 64:
                                latch = latches.setdefault(reg.name, Signal(32, name=f"l_{port_name(reg)}"))
                                if half == 0:
                                    m.d.sync += [r_data.eq(value[:32]), latch.eq(value[32:])]
                                else:
                                    m.d.sync += r_data.eq(latch)
                            else:
                                m.d.sync += r_data.eq(value[32 * half:32 * half + 32])
                with m.Default():
                    m.d.sync += r_data.eq(UNMAPPED_READ_VALUE)
                    m.d.comb += unmapped_rd.eq(1)
        with m.Elif(bus.r_stb & in_ctr):
            m.d.sync += r_data.eq(0)
        with m.Elif(bus.r_stb):
            # Inside a table: its data, or the unmapped value for a hole.
            m.d.sync += r_data.eq(Mux(unmapped_rd, UNMAPPED_READ_VALUE, 0))

        # Writes: byte enables honoured; read-only and unmapped addresses counted.
        be_mask = _byte_mask(bus.w_be)
        with m.If(bus.w_stb & ~any_table):
            with m.Switch(bus.addr):
                for reg in self._regmap:
                    if reg.block:
                        continue
                    for half in range(reg.dwords):
                        with m.Case(reg.addr // 4 + half):
                            if reg.access == "rw":
                                # Byte by byte, so that each byte's flip-flops
                                # take an enable rather than a multiplexer.
                                store = values[reg.name]
                                for k in range(4):
                                    lo = 32 * half + 8 * k
                                    if lo < reg.width:
                                        with m.If(bus.w_be[k]):
                                            m.d.sync += store[lo:lo + 8].eq(bus.w_data[8 * k:8 * k + 8])
                            elif reg.access == "wo":
                                port = getattr(self, port_name(reg))
                                m.d.sync += [port.stb.eq(1),
                                             port.data.eq((bus.w_data & be_mask) << (32 * half))]
                            else:
                                m.d.comb += bad_wr.eq(1)
                with m.Default():
                    m.d.comb += bad_wr.eq(1)
        # ``clear`` wins over a write in the same cycle (a synchronous reset
        # of flip-flops that have an enable).
        with m.If(self.clear):
            for reg in self._regmap:
                if not reg.block and reg.access == "rw":
                    m.d.sync += values[reg.name].eq(resets[reg.name])
        return m
