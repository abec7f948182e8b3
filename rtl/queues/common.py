"""Views of the memory-region registers, the protection check and the
completion request that the queue engines share."""

from amaranth.hdl import Cat, Const, Mux, Signal, unsigned
from amaranth.lib import data

from ..csr import get_field
from ..regmap import regmap

__all__ = ["MrRegs", "cpl_req_layout", "protection_ok", "ERROR_CHAIN_TOO_LONG"]

#: Queue ERROR code for a chain longer than the descriptor cache.
ERROR_CHAIN_TOO_LONG = 15


class MrRegs:
    def __init__(self, csr, config, k):
        r = regmap(config)
        ctrl = getattr(csr, f"mr{k}_ctrl")
        c = r[f"MR{k}_CTRL"]
        self.base = getattr(csr, f"mr{k}_base")
        self.len = getattr(csr, f"mr{k}_len")
        self.enable = get_field(ctrl, c, "ENABLE")
        self.read = get_field(ctrl, c, "READ")
        self.write = get_field(ctrl, c, "WRITE")
        self.pd = get_field(ctrl, c, "PD")


def cpl_req_layout():
    """What an engine asks the completion writer to write (it adds phase and time)."""
    return data.StructLayout({
        "cq": unsigned(8), "kind": 1, "queue": unsigned(8), "index": unsigned(16), "ndesc": unsigned(8),
        "len": unsigned(32), "status": unsigned(4),
    })


def protection_ok(m, mrs, pd, addr, length, write):
    """True when ``[addr, addr + length)`` lies inside one enabled memory region
    of domain ``pd`` that allows the access (``write``: an Amaranth value, 1 for
    a receive buffer). Sums are taken with a 65th bit: a region or a buffer
    that would run past the top of the 64-bit address space never matches (no
    wrap to 0). Each region's end is computed once, in a register (regions
    change rarely; a change applies to descriptors fetched a cycle later)."""
    hits = []
    end = Signal(65)
    m.d.comb += end.eq(addr + length)
    for k, mr in enumerate(mrs):
        mr_end = Signal(65, name=f"mr{k}_end")
        m.d.sync += mr_end.eq(mr.base + mr.len)
        hit = Signal(name=f"mr{k}_hit")
        m.d.comb += hit.eq(mr.enable & (mr.pd == pd) & Mux(write, mr.write, mr.read)
                           & (mr_end <= (1 << 64)) & (addr >= mr.base) & (end <= mr_end))
        hits.append(hit)
    return Cat(*hits).any() if hits else Const(0, 1)
