"""The PCIe subsystem: the TLP ports, BAR0 access, the DMA engines shared by
the clients that register with it, and MSI.

Other subsystems ask it, while the top is being built, for what they need:

    rd = pcie.add_read_client("desc")    # connect a DmaReadClient port to it
    wr = pcie.add_write_client("rxe")    # connect a DmaWriteClient port to it
    irq = pcie.add_irq("cq")             # drive it with one pulse per vector

and it sizes its multiplexers and its interrupt request from the list when it
is elaborated: nothing is numbered by hand.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..csr import CsrBus
from ..dma.layouts import read_req_layout
from ..dma.mux import DmaReadClient, DmaReadMux, DmaWriteClient, DmaWriteMux
from ..dma.read import DmaReadEngine, ReadStatsSignature
from ..dma.write import DmaWriteEngine, WriteStatsSignature
from ..lib.stream import RegisterSlice, StreamFifo, register_slice
from .arbiter import TlpArbiter
from .cfg import PcieCfgSignature
from .mmio import MmioTarget
from .msi import MsiGenerator
from .tlp import TlpStream, TlpType, tlp_beat_layout

__all__ = ["PcieSubsystem"]


class PcieSubsystem(wiring.Component):
    """
    i_tlp        In(TlpStream): TLPs from the host (requests to BAR0, completions)
    o_tlp        Out(TlpStream): TLPs to the host (completions, DMA requests, MSIs)
    cfg          In(PcieCfgSignature): configuration-space state
    csr          Out(CsrBus): register accesses from the host
    core_rst     In(1): reset the DMA engines and MSI (the register path stays up)
    hold         In(1): issue no new TLP; ``drained`` says when nothing is in flight
    drained      Out(1)
    irq_enable   In(1): MSIs allowed
    cpl_timeout  In(24): DMA read completion timeout in cycles
    rd_stats, wr_stats  Out: DMA engine counter pulses
    rd_busy, wr_busy    Out(1)
    wr_status_wait      Out(1): a DMA write status waits for its client this cycle
    mmio_bad_req, msi_sent, msi_blocked  Out(1): counter pulses

    Both TLP ports are registered: ``i_tlp.ready`` and ``o_tlp.valid`` come
    straight from flip-flops.
    """

    def __init__(self, config):
        self.config = config
        self._read_clients = []
        self._write_clients = []
        self._irqs = []
        self._frozen = False
        W = config.data_width
        super().__init__({
            "i_tlp": In(TlpStream(W)), "o_tlp": Out(TlpStream(W)), "cfg": In(PcieCfgSignature()),
            "csr": Out(CsrBus((config.bar0_size // 4 - 1).bit_length())),
            "core_rst": In(1), "hold": In(1), "drained": Out(1),
            "irq_enable": In(1), "cpl_timeout": In(24),
            "rd_stats": Out(ReadStatsSignature()), "wr_stats": Out(WriteStatsSignature()),
            "rd_busy": Out(1), "wr_busy": Out(1), "wr_status_wait": Out(1),
            "mmio_bad_req": Out(1), "msi_sent": Out(1), "msi_blocked": Out(1),
        })

    # ------------------------------------------------------------ registry
    def _check_open(self, what):
        if self._frozen:
            raise RuntimeError(f"{what} registered after the PCIe subsystem was elaborated")

    def add_read_client(self, name):
        """A DMA read port for client ``name``: connect the client's
        ``Out(DmaReadClient)`` port to it. Clients are served round robin, a
        group of requests at a time."""
        self._check_open(f"read client {name!r}")
        port = DmaReadClient(self.config.data_width).flip().create(path=("dma_rd", name))
        self._read_clients.append((name, port))
        return port

    def add_write_client(self, name):
        """A DMA write port for client ``name`` (see :meth:`add_read_client`).
        The client must take every status as soon as it is offered."""
        self._check_open(f"write client {name!r}")
        port = DmaWriteClient(self.config.data_width).flip().create(path=("dma_wr", name))
        self._write_clients.append((name, port))
        return port

    def add_irq(self, name):
        """An interrupt request of ``msi_vectors`` bits: a pulse on bit v asks
        for one MSI on vector v."""
        self._check_open(f"interrupt source {name!r}")
        sig = Signal(self.config.msi_vectors, name=f"irq_{name}")
        self._irqs.append((name, sig))
        return sig

    def clients(self):
        """Names of the registered read and write clients and interrupt sources."""
        return ([n for n, _ in self._read_clients], [n for n, _ in self._write_clients], [n for n, _ in self._irqs])

    # ------------------------------------------------------------ hardware
    def elaborate(self, platform):
        self._frozen = True
        m = Module()
        cfg = self.config
        W = cfg.data_width
        rst = self.core_rst
        # The link's FIFOs (eight TLP beats of a few hundred bits) are block
        # RAM: in distributed RAM they took some 400 logic cells. The
        # engines' small slices stay in distributed RAM beside the logic.
        m.submodules.rx_fifo = rx_fifo = StreamFifo(tlp_beat_layout(W), 8, ram_style="block")
        m.submodules.tx_fifo = tx_fifo = StreamFifo(tlp_beat_layout(W), 8, ram_style="block")
        m.submodules.mmio = mmio = MmioTarget(cfg)
        m.submodules.arbiter = arb = TlpArbiter(W, 4)
        dma_rd, dma_wr, msi = DmaReadEngine(cfg), DmaWriteEngine(cfg), MsiGenerator(cfg)
        rd_mux = DmaReadMux(W, max(1, len(self._read_clients)))
        wr_mux = DmaWriteMux(W, max(1, len(self._write_clients)))
        for name, block in (("dma_rd", dma_rd), ("dma_wr", dma_wr), ("msi", msi), ("rd_mux", rd_mux),
                            ("wr_mux", wr_mux)):
            m.submodules[name] = ResetInserter(rst)(block)

        connect(m, flipped(self.i_tlp), rx_fifo.i_stream)
        connect(m, tx_fifo.o_stream, flipped(self.o_tlp))

        # Host-bound traffic. The MMIO, MSI and DMA read sources reach the arbiter
        # through forward registers, so that no combinational path runs from
        # one source's valid to another's ready (the arbiter's grant looks
        # only at the registers' valids; the registers cost no logic per bit). The DMA write engine's TLPs
        # leave it through its own register slice: it reports a write done
        # only when its last TLP has passed from that slice into the arbiter
        # and so into the in-order output FIFO, so an MSI or a register read that
        # follows can never overtake the data (PCIe ordering: completions and
        # posted writes must not pass posted writes). The slices of engines that
        # a soft reset resets are reset with them (the drain has made sure the
        # arbiter is not inside one of their packets).
        sources = (mmio.o_tlp, msi.o_tlp, dma_rd.o_tlp)
        for k, src in enumerate(sources):
            register_slice(m, f"tx_slice{k}", src, arb.inputs()[k], domain_reset=None if k == 0 else rst,
                           skid=False)
        connect(m, dma_wr.o_tlp, arb.inputs()[len(sources)])
        connect(m, arb.o_tlp, tx_fifo.i_stream)

        # NIC-bound traffic: completions to the read engine, the rest to BAR0,
        # from a forward register after the FIFO (a block RAM's output comes
        # late in the cycle; the routing and the engines' decode start from
        # flip-flops).
        rx_slice = RegisterSlice(tlp_beat_layout(W), skid=False)
        m.submodules.rx_slice = rx_slice
        connect(m, rx_fifo.o_stream, rx_slice.i_stream)
        rx = rx_slice.o_stream
        to_cpl = Signal()
        in_pkt = Signal()
        route_cpl = Signal()
        m.d.comb += route_cpl.eq(Mux(in_pkt, to_cpl, rx.payload.hdr.req.dw0.type == TlpType.CPL))
        with m.If(rx.valid & rx.ready):
            m.d.sync += [in_pkt.eq(~rx.payload.eop), to_cpl.eq(route_cpl)]
        m.d.comb += [
            dma_rd.i_cpl.payload.eq(rx.payload), mmio.i_tlp.payload.eq(rx.payload),
            dma_rd.i_cpl.valid.eq(rx.valid & route_cpl), mmio.i_tlp.valid.eq(rx.valid & ~route_cpl),
            rx.ready.eq(Mux(route_cpl, dma_rd.i_cpl.ready, mmio.i_tlp.ready)),
        ]
        connect(m, mmio.csr, flipped(self.csr))
        m.d.comb += mmio.completer_id.eq(self.cfg.requester_id)
        connect(m, flipped(self.cfg), dma_rd.cfg, dma_wr.cfg, msi.cfg)

        # The registered clients. A read client's requests pass a small FIFO
        # (block RAM: in distributed RAM each took some 130 logic cells)
        # on their way to the multiplexer, and its data a register slice, so
        # that no combinational path runs from the client's request through the
        # round robin into the engine and back to the client's ready (nor from
        # one client into another). A write client's requests and data pass
        # forward registers (the multiplexer's ready comes from its grant,
        # which looks only at those registers, and from the engine side's
        # registers), its statuses a register slice; full throughput, one
        # cycle each.
        for (name, port), client in zip(self._read_clients, rd_mux.clients()):
            reqs = StreamFifo(read_req_layout(), 4, ram_style="block")
            m.submodules[f"rd_req_{name}"] = ResetInserter(rst)(reqs)
            connect(m, flipped(port.req), reqs.i_stream)
            connect(m, reqs.o_stream, client.req)
            register_slice(m, f"rd_data_{name}", client.data, flipped(port.data), domain_reset=rst)
        # A status that waits is counted where its client is offered it (behind
        # the slice), so that the deadlock check sees the client's first miss.
        status_wait = 0
        for (name, port), client in zip(self._write_clients, wr_mux.clients()):
            register_slice(m, f"wr_req_{name}", flipped(port.req), client.req, domain_reset=rst, skid=False)
            register_slice(m, f"wr_data_{name}", flipped(port.data), client.data, domain_reset=rst, skid=False)
            register_slice(m, f"wr_resp_{name}", client.resp, flipped(port.resp), domain_reset=rst)
            status_wait = status_wait | (port.resp.valid & ~port.resp.ready)
        # Between the multiplexers and the engines, register slices too: the
        # round robins and the engines' own decisions are in different cycles.
        register_slice(m, "rd_mux_req", rd_mux.engine.req, dma_rd.req, domain_reset=rst, skid=False)
        register_slice(m, "rd_mux_data", dma_rd.resp, rd_mux.engine.data, domain_reset=rst, skid=False)
        register_slice(m, "wr_mux_req", wr_mux.engine.req, dma_wr.req, domain_reset=rst, skid=False)
        register_slice(m, "wr_mux_data", wr_mux.engine.data, dma_wr.data, domain_reset=rst)
        connect(m, dma_wr.resp, wr_mux.engine.resp)
        request = 0
        for _, sig in self._irqs:
            request = request | sig
        m.d.comb += [msi.request.eq(request), msi.enable.eq(self.irq_enable)]

        m.d.comb += [
            dma_rd.timeout.eq(self.cpl_timeout),
            arb.hold.eq(self.hold), dma_rd.hold.eq(self.hold),
            self.drained.eq(~arb.busy & ~dma_rd.outstanding),
            self.rd_busy.eq(dma_rd.busy), self.wr_busy.eq(dma_wr.busy),
            # Write clients must take their statuses at once: a client that
            # waits for anything else first can deadlock the shared write engine.
            self.wr_status_wait.eq(status_wait),
            self.mmio_bad_req.eq(mmio.err_bad_req), self.msi_sent.eq(msi.sent), self.msi_blocked.eq(msi.blocked),
        ]
        connect(m, dma_rd.stats, flipped(self.rd_stats))
        connect(m, dma_wr.stats, flipped(self.wr_stats))
        return m
