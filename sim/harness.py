"""Simulation tops built around the NIC (never synthesised; only the
simulations use them).

``PtlnicPair``: two NICs, ``a`` and ``b``, each with its own PCIe port, joined by
a link: ``a``'s wire goes to ``b`` and back, through a fixed delay of
``link_delay`` cycles. With ``loopback`` high each NIC's wire comes back to
itself instead. On its way into each NIC the wire is shared, a whole
frame at a time and round robin, with an injector port (``inj_a``/``inj_b``)
that tests drive with frames of their own making (bad FCS, runts, oversize); the frames that reach
each NIC are visible on ``wire_a``/``wire_b`` for capture. A receiver's pause
(``ready`` low) holds its sender; the receiver keeps room for the frames on the
link.

``SimNic``: one NIC with the same ports, for the one-NIC testbenches.

Both tops take their reset through a flip-flop (``registered_reset``): the
domain's reset is then not a top-level input, so Verilator does not have to
evaluate every register's next-state logic whenever an input might have
changed (each half clock cycle), only on the clock edge.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from rtl.lib.arbiter import PacketArbiter
from rtl.pcie.cfg import PcieCfgSignature
from rtl.pcie.tlp import TlpStream
from rtl.streams import bytes_layout
from rtl.top import PtlNic

__all__ = ["PtlnicPair", "SimNic", "LINK_DELAY", "registered_reset"]

LINK_DELAY = 8


def registered_reset(m, clk, rst):
    """Define the ``sync`` domain on the top-level ports ``clk`` and ``rst``,
    its reset taken through a flip-flop (one cycle later)."""
    m.domains.sync = sync = ClockDomain("sync")
    m.domains.rst_in = ClockDomain("rst_in", reset_less=True)
    held = Signal(init=1, name="rst_held")
    m.d.comb += [sync.clk.eq(clk), ClockSignal("rst_in").eq(clk), sync.rst.eq(held)]
    m.d.rst_in += held.eq(rst)


class SimNic(wiring.Component):
    """:class:`rtl.top.PtlNic` with the same ports, plus ``clk`` and ``rst``."""

    def __init__(self, config):
        self.config = config
        self._nic = PtlNic(config)
        super().__init__({"clk": In(1), "rst": In(1), **self._nic.signature.members})

    def elaborate(self, platform):
        m = Module()
        registered_reset(m, self.clk, self.rst)
        m.submodules.nic = nic = self._nic
        for name in nic.signature.members:
            if nic.signature.members[name].flow == In:
                wiring.connect(m, flipped(getattr(self, name)), getattr(nic, name))
            else:
                wiring.connect(m, getattr(nic, name), flipped(getattr(self, name)))
        return m


class PtlnicPair(wiring.Component):
    def __init__(self, config, link_delay=LINK_DELAY):
        self.config = config
        self._delay = link_delay
        W = config.data_width
        wire = stream.Signature(bytes_layout(W))
        members = {"clk": In(1), "rst": In(1)}
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
        registered_reset(m, self.clk, self.rst)
        W = self.config.data_width
        wire = stream.Signature(bytes_layout(W))
        nics = {}
        for n in ("a", "b"):
            nic = nics[n] = m.submodules[f"nic_{n}"] = PtlNic(self.config)
            wiring.connect(m, flipped(getattr(self, f"{n}_i_tlp")), nic.i_tlp)
            wiring.connect(m, nic.o_tlp, flipped(getattr(self, f"{n}_o_tlp")))
            for name in PcieCfgSignature().members:
                m.d.comb += getattr(nic.cfg, name).eq(getattr(getattr(self, f"{n}_cfg"), name))

        loopback = Signal()
        m.d.sync += loopback.eq(self.loopback)
        joins = {}
        for dst, src in (("a", "b"), ("b", "a")):
            # The sender's wire and the injector share the way in, a frame at a time.
            join = joins[dst] = m.submodules[f"join_{dst}"] = PacketArbiter(wire, 2, last=lambda p: p.last)
            j_wire, j_inj = join.inputs()
            # The sender's wire (the NIC itself in loopback), then the injector.
            tx_dst, tx_src = nics[dst].o_eth, nics[src].o_eth
            m.d.comb += [
                j_wire.valid.eq(Mux(loopback, tx_dst.valid, tx_src.valid)),
                j_wire.payload.eq(Mux(loopback, tx_dst.payload, tx_src.payload)),
            ]
            wiring.connect(m, flipped(getattr(self, f"inj_{dst}")), j_inj)
            # Delay line towards the receiver; its pause goes straight back.
            valid, payload = join.o_stream.valid & join.o_stream.ready, join.o_stream.payload
            for k in range(self._delay):
                v = Signal(name=f"link_{dst}_v{k}")
                p = Signal(bytes_layout(W), name=f"link_{dst}_p{k}")
                m.d.sync += [v.eq(valid), p.eq(payload)]
                valid, payload = v, p
            rx = nics[dst].i_eth
            m.d.comb += [rx.valid.eq(valid), rx.payload.eq(payload), join.o_stream.ready.eq(rx.ready),
                         getattr(self, f"wire_{dst}_valid").eq(valid),
                         getattr(self, f"wire_{dst}_payload").eq(payload)]
        # A NIC's transmitter is held by the join its wire goes into.
        for n, other in (("a", "b"), ("b", "a")):
            own, peer = joins[n].inputs()[0], joins[other].inputs()[0]
            m.d.comb += nics[n].o_eth.ready.eq(Mux(loopback, own.ready, peer.ready))
        return m
