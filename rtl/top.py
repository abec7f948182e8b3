"""The NIC top level: PCIe TLP streams in and out, everything else inside."""

from amaranth.hdl import Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from amaranth.lib import stream

from .config import NicConfig
from .csr import RegisterFile, get_field, pack_fields
from .dma.mux import DmaReadMux, DmaWriteMux
from .dma.read import DmaReadEngine
from .dma.test_client import DmaTestClient
from .dma.write import DmaWriteEngine
from .lib.stream import StreamFifo
from .eth.mac import MIN_FRAME, MacRx, MacTx, RxError
from .packet_fifo import PacketFifo
from .pcie.arbiter import TlpArbiter
from .pcie.cfg import PcieCfgSignature
from .pcie.mmio import MmioTarget
from .pcie.msi import MsiGenerator
from .pcie.tlp import TlpStream, TlpType, tlp_beat_layout
from .queues.common import CqRegs, MrRegs, QueueRegs
from .queues.cpl import CplWriter
from .queues.desc import DescQueues
from .queues.rx import RxEngine, rx_meta_layout
from .queues.tx import TxEngine
from .regmap import REGMAP, regmap
from .streams import bytes_layout

__all__ = ["PtlNic", "SOFT_RESET_CYCLES"]

#: Cycles the core is held in reset after a soft reset has drained the link.
SOFT_RESET_CYCLES = 8


def _assign_all(dst, src, signature):
    return [getattr(dst, name).eq(getattr(src, name)) for name in signature.members]


class PtlNic(wiring.Component):
    """The NIC.

    i_tlp  In(TlpStream): TLPs from the host (requests to BAR0, completions)
    o_tlp  Out(TlpStream): TLPs to the host (completions, DMA requests, MSIs)
    cfg    In(PcieCfgSignature): configuration-space state from the endpoint
    o_eth  Out(stream(bytes_layout)): frames to the wire (FCS included), paced
           to the wire rate
    i_eth  In(stream(bytes_layout)): frames from the wire; ``ready`` drops only
           with RX back-pressure on (a pause: the receive buffer keeps room for
           a whole frame)

    Both TLP ports are registered: ``i_tlp.ready`` and ``o_tlp.valid`` come
    straight from flip-flops.
    """

    def __init__(self, config=NicConfig()):
        self.config = config
        super().__init__({
            "i_tlp": In(TlpStream(config.data_width)),
            "o_tlp": Out(TlpStream(config.data_width)),
            "cfg": In(PcieCfgSignature()),
            "o_eth": Out(stream.Signature(bytes_layout(config.data_width))),
            "i_eth": In(stream.Signature(bytes_layout(config.data_width))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        W = cfg.data_width
        cfg_sig = PcieCfgSignature()

        core_rst = Signal()
        m.submodules.rx_fifo = rx_fifo = StreamFifo(tlp_beat_layout(W), 8)
        m.submodules.tx_fifo = tx_fifo = StreamFifo(tlp_beat_layout(W), 8)
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

        connect(m, wiring.flipped(self.i_tlp), rx_fifo.i_stream)
        connect(m, tx_fifo.o_stream, wiring.flipped(self.o_tlp))

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
            slice_ = StreamFifo(tlp_beat_layout(W), 4)
            m.submodules[f"tx_slice{k}"] = slice_ if k == 0 else ResetInserter(core_rst)(slice_)
            connect(m, src, slice_.i_stream)
            connect(m, slice_.o_stream, arb.inputs()[k])
        connect(m, dma_wr.o_tlp, arb.inputs()[len(sources)])
        connect(m, arb.o_tlp, tx_fifo.i_stream)

        # NIC-bound traffic: completions to the read engine, the rest to BAR0.
        rx = rx_fifo.o_stream
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

        # Queues, their engines and the Ethernet port.
        rmap = regmap(cfg)
        txqs = [QueueRegs(csr, cfg, "TX", i) for i in range(cfg.num_queues)]
        rxqs = [QueueRegs(csr, cfg, "RX", i) for i in range(cfg.num_queues)]
        cqs = [CqRegs(csr, cfg, j) for j in range(cfg.num_cqs)]
        mrs = [MrRegs(csr, cfg, k) for k in range(cfg.num_mrs)]
        desc = DescQueues(cfg, txqs + rxqs, mrs)
        txe = TxEngine(cfg, txqs)
        rxe = RxEngine(cfg, rxqs)
        cplw = CplWriter(cfg, cqs)
        mac_tx = MacTx(W)
        mac_rx = MacRx(W, (cfg.num_queues - 1).bit_length(), cfg.max_frame)
        # As many frame records as minimum-size frames fit: the records never
        # run out before the data space does.
        min_beats = -(-(MIN_FRAME - 4) // cfg.beat_bytes)
        rx_buf = PacketFifo(W, cfg.rx_fifo // cfg.beat_bytes, rx_meta_layout(cfg.num_queues),
                            meta_depth=cfg.rx_fifo // cfg.beat_bytes // min_beats)
        rd_mux = DmaReadMux(W, 3)
        wr_mux = DmaWriteMux(W, 3)
        for name, block in (("desc", desc), ("txe", txe), ("rxe", rxe), ("cplw", cplw), ("mac_tx", mac_tx),
                            ("mac_rx", mac_rx), ("rx_buf", rx_buf), ("rd_mux", rd_mux), ("wr_mux", wr_mux)):
            m.submodules[name] = ResetInserter(core_rst)(block)
        connect(m, desc.tx, txe.chain)
        connect(m, desc.rx, rxe.chain)
        connect(m, txe.o_frame, mac_tx.i_frame)
        connect(m, mac_tx.o_wire, wiring.flipped(self.o_eth))
        connect(m, wiring.flipped(self.i_eth), mac_rx.i_wire)
        qctl = rmap["QUEUE_CONTROL"]
        backpressure = get_field(csr.queue_control, qctl, "RX_BACKPRESSURE")
        mf, bi = mac_rx.o_frame.payload, rx_buf.i_pkt.payload
        m.d.comb += [
            rx_buf.i_pkt.valid.eq(mac_rx.o_frame.valid), mac_rx.o_frame.ready.eq(rx_buf.i_pkt.ready),
            bi.data.eq(mf.data), bi.nbytes.eq(mf.nbytes), bi.last.eq(mf.last),
            bi.drop.eq(mf.error != RxError.OK), bi.meta.length.eq(mf.length), bi.meta.queue.eq(mf.queue),
            rx_buf.stall.eq(0),
            # Pause the wire while the receive buffer could not take one more whole frame.
            self.i_eth.ready.eq(mac_rx.i_wire.ready & (~backpressure | (
                rx_buf.level < (cfg.rx_fifo - cfg.max_frame) // cfg.beat_bytes - 16))),
            rxe.backpressure.eq(backpressure),
        ]
        connect(m, rx_buf.o_meta, rxe.i_meta)
        connect(m, rx_buf.o_pkt, rxe.i_frame)
        connect(m, txe.cpl, cplw.i_tx)
        connect(m, rxe.cpl, cplw.i_rx)
        connect(m, desc.claim, cplw.claim)
        for k in range(len(desc.retire)):
            connect(m, cplw.retire[k], desc.retire[k])

        # DMA engines and their clients.
        rdc, wrc = rd_mux.clients(), wr_mux.clients()
        connect(m, test.rd_req, rdc[0].req)
        connect(m, rdc[0].data, test.rd_data)
        connect(m, test.wr_req, wrc[0].req)
        connect(m, test.wr_data, wrc[0].data)
        connect(m, wrc[0].resp, test.wr_resp)
        connect(m, desc.dma, rdc[1])
        connect(m, txe.dma, rdc[2])
        connect(m, rxe.dma, wrc[1])
        connect(m, cplw.dma, wrc[2])
        connect(m, rd_mux.engine.req, dma_rd.req)
        connect(m, dma_rd.resp, rd_mux.engine.data)
        connect(m, wr_mux.engine.req, dma_wr.req)
        connect(m, wr_mux.engine.data, dma_wr.data)
        connect(m, dma_wr.resp, wr_mux.engine.resp)
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
                                                                    "VECTOR"), 0)
                           | cplw.irq),
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
        m.d.comb += cplw.now.eq(cycle_count[:32])
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
            csr.tx_frames.eq(mac_tx.sent), csr.rx_frames.eq(rxe.delivered),
            csr.rx_drop_overflow.eq(rx_buf.overflow), csr.rx_drop_no_buf.eq(rxe.no_buf),
            csr.rx_drop_disabled.eq(rxe.disabled),
            csr.desc_err_protection.eq(desc.prot), csr.desc_err_zero_len.eq(desc.zero),
            csr.db_ignored.eq(desc.db_ignored), csr.queue_faults.eq(desc.fault),
            csr.cpl_dropped.eq(cplw.dropped), csr.cq_irqs.eq(cplw.irqs), csr.tx_too_long.eq(txe.too_long),
            csr.err_cpl_poisoned.eq(rs.poisoned), csr.rx_drop_cq_full.eq(rxe.cq_full),
            csr.cq_db_ignored.eq(cplw.db_ignored),
            # Write clients must take their statuses at once: a client that
            # waits for anything else first can deadlock the shared write engine.
            csr.dma_wr_status_waits.eq(dma_wr.resp.valid & ~dma_wr.resp.ready),
        ]
        rx_end = mac_rx.o_frame.valid & mac_rx.o_frame.ready & mf.last
        m.d.comb += [
            csr.rx_drop_fcs.eq(rx_end & (mf.error == RxError.BAD_FCS)),
            csr.rx_drop_runt.eq(rx_end & (mf.error == RxError.RUNT)),
            csr.rx_drop_oversize.eq(rx_end & (mf.error == RxError.OVERSIZE)),
        ]
        return m
