"""BAR0 register file, generated from :data:`rtl.regmap.REGMAP`."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import UNMAPPED_READ_VALUE, const_values, regmap, reset_values

__all__ = ["CsrBus", "StrobeSignature", "RegisterFile", "port_name", "pack_fields", "get_field"]


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


class CsrBus(wiring.Signature):
    """DWORD-wide register bus, initiator side.

    addr    DWORD index within BAR0
    r_stb   read the DWORD at ``addr``; ``r_data`` holds it on the next cycle
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
    """

    def __init__(self, config, rmap=None):
        self._config = config
        self._regmap = rmap or regmap(config)
        self._addr_width = (config.bar0_size // 4 - 1).bit_length()
        members = {"bus": In(CsrBus(self._addr_width)), "clear": In(1)}
        for reg in self._regmap:
            if reg.access == "rw":
                members[port_name(reg)] = Out(reg.width)
            elif reg.access == "ro":
                members[port_name(reg)] = In(reg.width)
            elif reg.access == "wo":
                members[port_name(reg)] = Out(StrobeSignature(reg.width))
            elif reg.access == "counter":
                members[port_name(reg)] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        consts = const_values(self._config)
        resets = reset_values(self._config)

        counter_clear = Signal()
        unmapped_rd = Signal()
        bad_wr = Signal()

        # Storage and hardware-side behaviour.
        values = {}
        for reg in self._regmap:
            port = getattr(self, port_name(reg), None)
            if reg.access == "const":
                values[reg.name] = Const(consts[reg.name], reg.width)
            elif reg.access == "rw":
                store = Signal(reg.width, name=f"r_{port_name(reg)}", init=resets[reg.name])
                m.d.comb += port.eq(store)
                with m.If(self.clear):
                    m.d.sync += store.eq(resets[reg.name])
                values[reg.name] = store
            elif reg.access == "ro":
                values[reg.name] = port
            elif reg.access == "wo":
                m.d.sync += port.stb.eq(0)
                values[reg.name] = Const(0, reg.width)
            elif reg.access == "counter":
                count = Signal(32, name=f"c_{port_name(reg)}")
                inc = port
                if reg.name == "ERR_MMIO_UNMAPPED_RD":
                    inc = port | unmapped_rd
                elif reg.name == "ERR_MMIO_BAD_WR":
                    inc = port | bad_wr
                with m.If(self.clear | counter_clear):
                    m.d.sync += count.eq(0)
                with m.Elif(inc & (count != 0xFFFF_FFFF)):
                    m.d.sync += count.eq(count + 1)
                values[reg.name] = count
        m.d.comb += counter_clear.eq(self.counter_clear.stb & self.counter_clear.data[0])

        # Reads: one cycle of latency.
        r_data = Signal(32)
        m.d.comb += bus.r_data.eq(r_data)
        latches = {}
        with m.If(bus.r_stb):
            with m.Switch(bus.addr):
                for reg in self._regmap:
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

        # Writes: byte enables honoured; read-only and unmapped addresses counted.
        be_mask = Cat(*[Mux(bus.w_be[b], Const(0xFF, 8), Const(0, 8)) for b in range(4)])
        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                for reg in self._regmap:
                    for half in range(reg.dwords):
                        with m.Case(reg.addr // 4 + half):
                            if reg.access == "rw":
                                store = values[reg.name]
                                old = store[32 * half:32 * half + 32]
                                m.d.sync += old.eq((old & ~be_mask) | (bus.w_data & be_mask))
                            elif reg.access == "wo":
                                port = getattr(self, port_name(reg))
                                m.d.sync += [port.stb.eq(1),
                                             port.data.eq((bus.w_data & be_mask) << (32 * half))]
                            else:
                                m.d.comb += bad_wr.eq(1)
                with m.Default():
                    m.d.comb += bad_wr.eq(1)
        return m
