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

In both, each NIC's TLP ports are reached either beat by beat (``i_tlp`` and
``o_tlp``, as the NIC has them) or a chunk at a time (``h2d`` and ``d2h``,
through :class:`sim.chunks.TlpChunkBridge`), as ``chunked`` selects.

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
from .chunks import VIOLATIONS, TlpChunkBridge, chunk_layout

__all__ = ["PtlnicPair", "SimNic", "LINK_DELAY", "registered_reset", "chunk_members"]

LINK_DELAY = 8


def registered_reset(m, clk, rst):
    """Define the ``sync`` domain on the top-level ports ``clk`` and ``rst``,
    its reset taken through a flip-flop (one cycle later)."""
    m.domains.sync = sync = ClockDomain("sync")
    m.domains.rst_in = ClockDomain("rst_in", reset_less=True)
    held = Signal(init=1, name="rst_held")
    m.d.comb += [sync.clk.eq(clk), ClockSignal("rst_in").eq(clk), sync.rst.eq(held)]
    m.d.rst_in += held.eq(rst)


def chunk_members(prefix=""):
    """The ports through which a model reaches one NIC's TLPs a chunk at a time."""
    layout = chunk_layout()
    return {f"{prefix}h2d": In(stream.Signature(layout)), f"{prefix}d2h": Out(stream.Signature(layout)),
            f"{prefix}chunked": In(1), f"{prefix}tlp_violations": Out(len(VIOLATIONS))}


def join_tlp(m, top, prefix, nic, W):
    """Connect ``nic``'s TLP ports to the top's ports named ``prefix...``: the
    beat ports or the chunk bridge, as the (registered) ``chunked`` input says."""
    port = lambda name: getattr(top, prefix + name)   # noqa: E731
    bridge = m.submodules[f"{prefix}chunks"] = TlpChunkBridge(W)
    chunked = Signal(name=f"{prefix}chunked_q")
    m.d.sync += chunked.eq(port("chunked"))
    wiring.connect(m, flipped(port("h2d")), bridge.h2d)
    wiring.connect(m, bridge.d2h, flipped(port("d2h")))
    beats_i, beats_o = port("i_tlp"), port("o_tlp")
    m.d.comb += [
        nic.i_tlp.valid.eq(Mux(chunked, bridge.to_nic.valid, beats_i.valid)),
        nic.i_tlp.payload.eq(Mux(chunked, bridge.to_nic.payload, beats_i.payload)),
        beats_i.ready.eq(nic.i_tlp.ready & ~chunked),
        bridge.to_nic.ready.eq(nic.i_tlp.ready & chunked),
        beats_o.valid.eq(nic.o_tlp.valid & ~chunked),
        beats_o.payload.eq(nic.o_tlp.payload),
        bridge.from_nic.valid.eq(nic.o_tlp.valid & chunked),
        bridge.from_nic.payload.eq(nic.o_tlp.payload),
        nic.o_tlp.ready.eq(Mux(chunked, bridge.from_nic.ready, beats_o.ready)),
        port("tlp_violations").eq(bridge.violations),
    ]


class SimNic(wiring.Component):
    """:class:`rtl.top.PtlNic` with the same ports, plus ``clk`` and ``rst``."""

    def __init__(self, config):
        self.config = config
        self._nic = PtlNic(config)
        super().__init__({"clk": In(1), "rst": In(1), **self._nic.signature.members, **chunk_members()})

    def elaborate(self, platform):
        m = Module()
        registered_reset(m, self.clk, self.rst)
        m.submodules.nic = nic = self._nic
        join_tlp(m, self, "", nic, self.config.data_width)
        for name in nic.signature.members:
            if name in ("i_tlp", "o_tlp"):
                continue
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
            members.update(chunk_members(f"{n}_"))
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
            join_tlp(m, self, f"{n}_", nic, W)
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
