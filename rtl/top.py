"""The NIC top level: PCIe TLP streams in and out, everything else inside."""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out, connect

from .config import NicConfig
from .csr import RegisterFile, get_field, pack_fields
from .dma.read import DmaReadEngine
from .dma.test_client import DmaTestClient
from .dma.write import DmaWriteEngine
from .pcie.arbiter import TlpArbiter
from .pcie.cfg import PcieCfgSignature
from .pcie.mmio import MmioTarget
from .pcie.msi import MsiGenerator
from .pcie.tlp import TlpStream, TlpType, tlp_beat_layout
from .regmap import REGMAP

__all__ = ["PtlNic", "SOFT_RESET_CYCLES"]

#: Cycles the core is held in reset after a soft reset has drained the link.
SOFT_RESET_CYCLES = 8


def _assign_all(dst, src, signature):
    return [getattr(dst, name).eq(getattr(src, name)) for name in signature.members]


class TlpFifo(wiring.Component):
    """A registered TLP FIFO: ``valid`` and ``ready`` at its ports come from flops."""

    def __init__(self, data_width, depth):
        self._width = data_width
        self._depth = depth
        super().__init__({"i_tlp": In(TlpStream(data_width)), "o_tlp": Out(TlpStream(data_width))})

    def elaborate(self, platform):
        m = Module()
        f = m.submodules.fifo = fifo.SyncFIFOBuffered(width=tlp_beat_layout(self._width).size, depth=self._depth)
        m.d.comb += [
            f.w_data.eq(self.i_tlp.payload), f.w_en.eq(self.i_tlp.valid), self.i_tlp.ready.eq(f.w_rdy),
            self.o_tlp.payload.eq(f.r_data), self.o_tlp.valid.eq(f.r_rdy), f.r_en.eq(self.o_tlp.ready),
        ]
        return m


class PtlNic(wiring.Component):
    """The NIC.

    i_tlp  In(TlpStream): TLPs from the host (requests to BAR0, completions)
    o_tlp  Out(TlpStream): TLPs to the host (completions, DMA requests, MSIs)
    cfg    In(PcieCfgSignature): configuration-space state from the endpoint

    Both TLP ports are registered: ``i_tlp.ready`` and ``o_tlp.valid`` come
    straight from flip-flops.
    """

    def __init__(self, config=NicConfig()):
        self.config = config
        super().__init__({
            "i_tlp": In(TlpStream(config.data_width)),
            "o_tlp": Out(TlpStream(config.data_width)),
            "cfg": In(PcieCfgSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        W = cfg.data_width
        cfg_sig = PcieCfgSignature()

        core_rst = Signal()
        m.submodules.rx_fifo = rx_fifo = TlpFifo(W, 8)
        m.submodules.tx_fifo = tx_fifo = TlpFifo(W, 8)
        m.submodules.csr = csr = RegisterFile(cfg)
        m.submodules.mmio = mmio = MmioTarget(cfg)
        m.submodules.arbiter = arb = TlpArbiter(W, 4)
        dma_rd = DmaReadEngine(cfg)
        dma_wr = DmaWriteEngine(cfg)
        msi = MsiGenerator(cfg)
        test = DmaTestClient(cfg)
        m.submodules.dma_rd = ResetInserter(core_rst)(dma_rd)
        m.submodules.dma_wr = ResetInserter(core_rst)(dma_wr)
        m.submodules.msi = ResetInserter(core_rst)(msi)
        m.submodules.dma_test = ResetInserter(core_rst)(test)

        connect(m, wiring.flipped(self.i_tlp), rx_fifo.i_tlp)
        connect(m, tx_fifo.o_tlp, wiring.flipped(self.o_tlp))

        # Host-bound traffic. The MMIO, MSI and DMA read sources reach the arbiter
        # through small FIFOs, so that no combinational path runs from one
        # source's valid to another's ready. The DMA write engine connects
        # directly: it reports a write done only when its last TLP has passed the
        # arbiter into the in-order output FIFO, so an MSI or a register read that
        # follows can never overtake the data (PCIe ordering: completions and
        # posted writes must not pass posted writes). The slices of engines that
        # a soft reset resets are reset with them (the drain has made sure the
        # arbiter is not inside one of their packets).
        sources = (mmio.o_tlp, msi.o_tlp, dma_rd.o_tlp)
        for k, src in enumerate(sources):
            slice_ = TlpFifo(W, 4)
            m.submodules[f"tx_slice{k}"] = slice_ if k == 0 else ResetInserter(core_rst)(slice_)
            connect(m, src, slice_.i_tlp)
            connect(m, slice_.o_tlp, arb.inputs()[k])
        connect(m, dma_wr.o_tlp, arb.inputs()[len(sources)])
        connect(m, arb.o_tlp, tx_fifo.i_tlp)

        # NIC-bound traffic: completions to the read engine, the rest to BAR0.
        rx = rx_fifo.o_tlp
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

        connect(m, mmio.csr, csr.bus)
        m.d.comb += mmio.completer_id.eq(self.cfg.requester_id)
        for block in (dma_rd, dma_wr, msi):
            m.d.comb += _assign_all(block.cfg, self.cfg, cfg_sig)

        # DMA engines and their self-test client.
        connect(m, test.rd_req, dma_rd.req)
        connect(m, dma_rd.resp, test.rd_data)
        connect(m, test.wr_req, dma_wr.req)
        connect(m, test.wr_data, dma_wr.data)
        connect(m, dma_wr.resp, test.wr_resp)
        ctrl = csr.dma_test_ctrl
        r_ctrl = REGMAP["DMA_TEST_CTRL"]
        m.d.comb += [
            dma_rd.timeout.eq(csr.dma_cpl_timeout[:24]),
            test.start.eq(ctrl.stb & get_field(ctrl.data, r_ctrl, "START")),
            test.write.eq(get_field(ctrl.data, r_ctrl, "WRITE")),
            test.irq_en.eq(get_field(ctrl.data, r_ctrl, "IRQ")),
            test.host_addr.eq(csr.dma_test_host_addr), test.nic_addr.eq(csr.dma_test_nic_addr),
            test.length.eq(csr.dma_test_len), test.count.eq(csr.dma_test_count),
            test.stride.eq(csr.dma_test_stride),
            csr.dma_test_cycles.eq(test.cycles), csr.dma_test_done.eq(test.done),
            csr.dma_test_errors.eq(test.errors),
            csr.dma_test_status.eq(pack_fields(REGMAP["DMA_TEST_STATUS"], BUSY=test.busy, ERROR=test.error,
                                               FIRST_ERROR=test.first_error)),
        ]

        # Interrupts.
        nv = cfg.msi_vectors
        trig = csr.msi_trigger
        m.d.comb += [
            msi.enable.eq(get_field(csr.control, REGMAP["CONTROL"], "IRQ_ENABLE")),
            msi.request.eq(Mux(trig.stb, Const(1, nv) << get_field(trig.data, REGMAP["MSI_TRIGGER"], "VECTOR"), 0)
                           | Mux(test.irq, Const(1, nv) << get_field(csr.dma_test_vector, REGMAP["DMA_TEST_VECTOR"],
                                                                    "VECTOR"), 0)),
        ]

        # Soft reset: stop issuing, let the link and outstanding reads drain, then reset.
        hold = Signal()
        rst_count = Signal(range(SOFT_RESET_CYCLES + 1))
        with m.FSM(name="soft_reset"):
            with m.State("Run"):
                with m.If(csr.soft_reset.stb & csr.soft_reset.data[0]):
                    m.next = "Drain"
            with m.State("Drain"):
                m.d.comb += hold.eq(1)
                with m.If(~arb.busy & ~dma_rd.outstanding):
                    m.d.sync += rst_count.eq(SOFT_RESET_CYCLES)
                    m.next = "Reset"
            with m.State("Reset"):
                m.d.comb += [hold.eq(1), core_rst.eq(1)]
                m.d.sync += rst_count.eq(rst_count - 1)
                with m.If(rst_count == 1):
                    m.next = "Run"
        m.d.comb += [arb.hold.eq(hold), dma_rd.hold.eq(hold), csr.clear.eq(core_rst)]

        # Status and counters.
        def code(cap, enc):
            cap_code = (cap // 128).bit_length() - 1
            return Mux(enc > cap_code, cap_code, enc)

        cycle_count = Signal(64)
        m.d.sync += cycle_count.eq(cycle_count + 1)
        m.d.comb += [
            csr.cycle_count.eq(cycle_count),
            csr.status.eq(pack_fields(
                REGMAP["STATUS"], RESET_BUSY=hold, BUS_MASTER=self.cfg.bus_master, MSI_ENABLE=self.cfg.msi_enable,
                MPS=code(cfg.max_payload_size, self.cfg.mps), MRRS=code(cfg.max_read_request_size, self.cfg.mrrs),
                DMA_RD_BUSY=dma_rd.busy, DMA_WR_BUSY=dma_wr.busy, REQUESTER_ID=self.cfg.requester_id)),
        ]
        rs, ws = dma_rd.stats, dma_wr.stats
        m.d.comb += [
            csr.err_mmio_bad_req.eq(mmio.err_bad_req),
            csr.err_cpl_ur.eq(rs.ur), csr.err_cpl_ca.eq(rs.ca), csr.err_cpl_timeout.eq(rs.timeout),
            csr.err_cpl_bad_tag.eq(rs.bad_tag), csr.err_cpl_bad_len.eq(rs.bad_len),
            csr.err_dma_bus_master.eq(rs.bus_master | ws.bus_master),
            csr.err_dma_zero_len.eq(rs.zero_len | ws.zero_len),
            csr.dma_rd_ops.eq(rs.ops), csr.dma_rd_tlps.eq(rs.tlps), csr.dma_rd_cpls.eq(rs.cpls),
            csr.dma_wr_ops.eq(ws.ops), csr.dma_wr_tlps.eq(ws.tlps),
            csr.msi_sent.eq(msi.sent), csr.msi_blocked.eq(msi.blocked),
        ]
        return m
