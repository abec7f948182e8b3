"""Simulation tops built around the NIC (never synthesised; only the
simulations use them).

``PtlnicPair``: two NICs, ``a`` and ``b``, each with its own PCIe port, joined by
a link: ``a``'s wire goes to ``b`` and back, through a fixed delay of
``link_delay`` cycles. With ``loopback`` high each NIC's wire comes back to
itself instead. On its way into each NIC the wire can be taken over, a whole
frame at a time, by an injector port (``inj_a``/``inj_b``) that tests drive with
frames of their own making (bad FCS, runts, oversize); the frames that reach
each NIC are visible on ``wire_a``/``wire_b`` for capture. A receiver's pause
(``ready`` low) holds its sender; the receiver keeps room for the frames on the
link.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from rtl.pcie.cfg import PcieCfgSignature
from rtl.pcie.tlp import TlpStream
from rtl.streams import bytes_layout
from rtl.top import PtlNic

__all__ = ["PtlnicPair", "LINK_DELAY"]

LINK_DELAY = 8


class _Join(wiring.Component):
    """Takes frames from ``a`` or ``b`` (``b`` wins at a frame boundary)."""

    def __init__(self, width):
        sig = stream.Signature(bytes_layout(width))
        super().__init__({"a": In(sig), "b": In(sig), "o": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        in_frame = Signal()
        owner_b = Signal()
        use_b = Mux(in_frame, owner_b, self.b.valid)
        with m.If(use_b):
            m.d.comb += [self.o.valid.eq(self.b.valid), self.o.payload.eq(self.b.payload),
                         self.b.ready.eq(self.o.ready)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(self.a.valid), self.o.payload.eq(self.a.payload),
                         self.a.ready.eq(self.o.ready)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [in_frame.eq(~self.o.payload.last), owner_b.eq(use_b)]
        return m


class PtlnicPair(wiring.Component):
    def __init__(self, config, link_delay=LINK_DELAY):
        self.config = config
        self._delay = link_delay
        W = config.data_width
        wire = stream.Signature(bytes_layout(W))
        members = {}
        for n in ("a", "b"):
            members[f"{n}_i_tlp"] = In(TlpStream(W))
            members[f"{n}_o_tlp"] = Out(TlpStream(W))
            members[f"{n}_cfg"] = In(PcieCfgSignature())
            members[f"inj_{n}"] = In(wire)
            members[f"wire_{n}_valid"] = Out(1)           # what arrives at NIC n, for capture
            members[f"wire_{n}_payload"] = Out(bytes_layout(W))
        members["loopback"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W = self.config.data_width
        nics = {}
        for n in ("a", "b"):
            nic = nics[n] = m.submodules[f"nic_{n}"] = PtlNic(self.config)
            wiring.connect(m, flipped(getattr(self, f"{n}_i_tlp")), nic.i_tlp)
            wiring.connect(m, nic.o_tlp, flipped(getattr(self, f"{n}_o_tlp")))
            for name in PcieCfgSignature().members:
                m.d.comb += getattr(nic.cfg, name).eq(getattr(getattr(self, f"{n}_cfg"), name))

        joins = {}
        for dst, src in (("a", "b"), ("b", "a")):
            join = joins[dst] = m.submodules[f"join_{dst}"] = _Join(W)
            # The sender's wire (the NIC itself in loopback), then the injector.
            tx_dst, tx_src = nics[dst].o_eth, nics[src].o_eth
            m.d.comb += [
                join.a.valid.eq(Mux(self.loopback, tx_dst.valid, tx_src.valid)),
                join.a.payload.eq(Mux(self.loopback, tx_dst.payload, tx_src.payload)),
            ]
            wiring.connect(m, flipped(getattr(self, f"inj_{dst}")), join.b)
            # Delay line towards the receiver; its pause goes straight back.
            valid, payload = join.o.valid & join.o.ready, join.o.payload
            for k in range(self._delay):
                v = Signal(name=f"link_{dst}_v{k}")
                p = Signal(bytes_layout(W), name=f"link_{dst}_p{k}")
                m.d.sync += [v.eq(valid), p.eq(payload)]
                valid, payload = v, p
            rx = nics[dst].i_eth
            m.d.comb += [rx.valid.eq(valid), rx.payload.eq(payload), join.o.ready.eq(rx.ready),
                         getattr(self, f"wire_{dst}_valid").eq(valid),
                         getattr(self, f"wire_{dst}_payload").eq(payload)]
        # A NIC's transmitter is held by the join its wire goes into.
        for n, other in (("a", "b"), ("b", "a")):
            m.d.comb += nics[n].o_eth.ready.eq(Mux(self.loopback, joins[n].a.ready, joins[other].a.ready))
        return m
