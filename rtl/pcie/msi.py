# Ref: PCI Express Base Specification 4.0, §6.1.4 (MSI): an MSI is a posted
# DWORD memory write of the message data, its low bits replaced by the vector
# number as Multiple Message Enable allows, to the message address.
"""MSI generator."""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .cfg import PcieCfgSignature
from .tlp import TlpStream, mem_request_header

__all__ = ["MsiGenerator"]


class MsiGenerator(wiring.Component):
    """Sends one MSI per pending vector.

    A pulse on ``request`` bit *v* makes vector *v* pending; requests for a
    vector that is already pending merge. While ``enable`` (CONTROL.IRQ_ENABLE),
    MSI enable and bus mastering are not all set, requests are dropped and
    counted on ``blocked``.

    request  In(vectors): one pulse per interrupt wanted
    enable   In(1)
    cfg      In(PcieCfgSignature)
    o_tlp    Out(TlpStream): the MSI memory writes
    sent     Out(1), blocked Out(1): counter pulses
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "request": In(config.msi_vectors),
            "enable": In(1),
            "cfg": In(PcieCfgSignature()),
            "o_tlp": Out(TlpStream(config.data_width)),
            "sent": Out(1),
            "blocked": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        nv = self._config.msi_vectors
        pending = Signal(nv)
        allowed = self.enable & self.cfg.msi_enable & self.cfg.bus_master

        vec = Signal(range(max(nv, 2)))
        for v in reversed(range(nv)):
            with m.If(pending[v]):
                m.d.comb += vec.eq(v)

        mask = Signal(5)
        m.d.comb += mask.eq((Const(1, 6) << self.cfg.msi_mme) - 1)
        data = (self.cfg.msi_data & ~mask) | (vec & mask)

        o = self.o_tlp.payload
        h = o.hdr.req
        m.d.comb += mem_request_header(h, addr=self.cfg.msi_addr, dws=1, first_be=0xF, last_be=0,
                                       requester_id=self.cfg.requester_id, write=True)
        m.d.comb += [
            o.data.eq(data),
            o.nbytes.eq(4),
            o.sop.eq(1),
            o.eop.eq(1),
            self.o_tlp.valid.eq(allowed & (pending != 0)),
        ]

        sent_now = self.o_tlp.valid & self.o_tlp.ready
        cleared = Mux(sent_now, pending & ~(Const(1, nv) << vec)[:nv], pending)
        with m.If(allowed):
            m.d.sync += pending.eq(cleared | self.request)
            m.d.comb += self.blocked.eq(0)
        with m.Else():
            m.d.sync += pending.eq(0)
            m.d.comb += self.blocked.eq((self.request != 0) | (pending != 0))
        m.d.comb += self.sent.eq(sent_now)
        return m
