"""The NIC top level: it composes the subsystems. PCIe TLP streams in and out,
Ethernet frames in and out, everything else inside.

The PCIe subsystem owns the DMA engines and MSI; the others ask it for DMA
clients and interrupt sources while they are built (``add_read_client``,
``add_write_client``, ``add_irq``), so the top never numbers them by hand.
"""

from amaranth.hdl import Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .config import NicConfig
from .csr import RegisterFile, get_field, pack_fields
from .dma.test_client import DmaTestClient
from .eth.port import EthPort
from .pcie.cfg import PcieCfgSignature
from .pcie.subsystem import PcieSubsystem
from .pcie.tlp import TlpStream
from .queues.subsystem import QueueSubsystem
from .regmap import REGMAP
from .streams import bytes_layout

__all__ = ["PtlNic", "SOFT_RESET_CYCLES"]

#: Cycles the core is held in reset after a soft reset has drained the link
#: (STATUS.RESET_BUSY stays set until the register tables have cleared too).
SOFT_RESET_CYCLES = 8


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
        core_rst = Signal()

        m.submodules.csr = csr = RegisterFile(cfg)
        m.submodules.pcie = pcie = PcieSubsystem(cfg)
        # The DMA self-test client, then the queues: each registers what it uses.
        test = DmaTestClient(cfg)
        test_rd, test_wr = pcie.add_read_client("selftest"), pcie.add_write_client("selftest")
        test_irq = pcie.add_irq("selftest")
        trigger_irq = pcie.add_irq("trigger")
        m.submodules.queues = queues = QueueSubsystem(cfg, csr, pcie)
        m.submodules.eth = eth = EthPort(cfg)
        m.submodules.dma_test = ResetInserter(core_rst)(test)

        connect(m, flipped(self.i_tlp), pcie.i_tlp)
        connect(m, pcie.o_tlp, flipped(self.o_tlp))
        # Configuration-space state changes only when the host writes config
        # space: taken through a register, so that no logic depends on the
        # endpoint's outputs within the cycle.
        cfg_q = PcieCfgSignature().create(path=("cfg_q",))
        for name in PcieCfgSignature().members:
            m.d.sync += getattr(cfg_q, name).eq(getattr(self.cfg, name))
        connect(m, cfg_q, pcie.cfg)
        connect(m, pcie.csr, csr.bus)
        backpressure = get_field(csr.queue_control, REGMAP["QUEUE_CONTROL"], "RX_BACKPRESSURE")
        connect(m, queues.o_frame, eth.i_frame)
        connect(m, eth.o_wire, flipped(self.o_eth))
        connect(m, flipped(self.i_eth), eth.i_wire)
        connect(m, eth.o_meta, queues.i_meta)
        connect(m, eth.o_frame, queues.i_frame)
        # The engine port of the Ethernet port (the Portals engine's place): no
        # engine yet, so nothing is sent from it and its frames are taken and
        # counted.
        engine_et = get_field(csr.rx_engine_ethertype, REGMAP["RX_ENGINE_ETHERTYPE"], "ETHERTYPE")
        m.d.comb += [eth.i_engine_frame.valid.eq(0), eth.e_meta.ready.eq(1), eth.e_frame.ready.eq(1),
                     eth.engine_ethertype.eq(engine_et),
                     csr.rx_engine_frames.eq(eth.e_meta.valid & eth.e_meta.ready)]
        m.d.comb += [queues.backpressure.eq(backpressure), eth.backpressure.eq(backpressure),
                     pcie.core_rst.eq(core_rst), queues.core_rst.eq(core_rst), eth.core_rst.eq(core_rst)]

        # The DMA self-test, driven by its registers.
        connect(m, test.rd_req, test_rd.req)
        connect(m, test_rd.data, test.rd_data)
        connect(m, test.wr_req, test_wr.req)
        connect(m, test.wr_data, test_wr.data)
        connect(m, test_wr.resp, test.wr_resp)
        ctrl = csr.dma_test_ctrl
        r_ctrl = REGMAP["DMA_TEST_CTRL"]
        nv = cfg.msi_vectors
        trig = csr.msi_trigger
        m.d.comb += [
            pcie.cpl_timeout.eq(csr.dma_cpl_timeout[:24]),
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
            test_irq.eq(Mux(test.irq, Const(1, nv) << get_field(csr.dma_test_vector, REGMAP["DMA_TEST_VECTOR"],
                                                                "VECTOR"), 0)),
            trigger_irq.eq(Mux(trig.stb, Const(1, nv) << get_field(trig.data, REGMAP["MSI_TRIGGER"], "VECTOR"), 0)),
            pcie.irq_enable.eq(get_field(csr.control, REGMAP["CONTROL"], "IRQ_ENABLE")),
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
                with m.If(pcie.drained):
                    m.d.sync += rst_count.eq(SOFT_RESET_CYCLES)
                    m.next = "Reset"
            with m.State("Reset"):
                m.d.comb += [hold.eq(1), core_rst.eq(1)]
                m.d.sync += rst_count.eq(rst_count - 1)
                with m.If(rst_count == 1):
                    m.next = "Run"
        m.d.comb += [pcie.hold.eq(hold), csr.clear.eq(core_rst)]

        # Status and counters.
        def code(cap, enc):
            cap_code = (cap // 128).bit_length() - 1
            return Mux(enc > cap_code, cap_code, enc)

        cycle_count = Signal(64)
        m.d.sync += cycle_count.eq(cycle_count + 1)
        m.d.comb += queues.now.eq(cycle_count[:32])
        m.d.comb += [
            csr.cycle_count.eq(cycle_count),
            csr.status.eq(pack_fields(
                REGMAP["STATUS"], RESET_BUSY=hold | csr.busy, BUS_MASTER=cfg_q.bus_master,
                MSI_ENABLE=cfg_q.msi_enable,
                MPS=code(cfg.max_payload_size, cfg_q.mps), MRRS=code(cfg.max_read_request_size, cfg_q.mrrs),
                DMA_RD_BUSY=pcie.rd_busy, DMA_WR_BUSY=pcie.wr_busy, REQUESTER_ID=cfg_q.requester_id)),
        ]
        rs, ws, qs, es = pcie.rd_stats, pcie.wr_stats, queues.stats, eth.stats
        m.d.comb += [
            csr.err_mmio_bad_req.eq(pcie.mmio_bad_req),
            csr.err_cpl_ur.eq(rs.ur), csr.err_cpl_ca.eq(rs.ca), csr.err_cpl_timeout.eq(rs.timeout),
            csr.err_cpl_bad_tag.eq(rs.bad_tag), csr.err_cpl_bad_len.eq(rs.bad_len),
            csr.err_cpl_poisoned.eq(rs.poisoned),
            csr.err_dma_bus_master.eq(rs.bus_master | ws.bus_master),
            csr.err_dma_zero_len.eq(rs.zero_len | ws.zero_len),
            csr.dma_rd_ops.eq(rs.ops), csr.dma_rd_tlps.eq(rs.tlps), csr.dma_rd_cpls.eq(rs.cpls),
            csr.dma_wr_ops.eq(ws.ops), csr.dma_wr_tlps.eq(ws.tlps),
            csr.dma_wr_status_waits.eq(pcie.wr_status_wait),
            csr.msi_sent.eq(pcie.msi_sent), csr.msi_blocked.eq(pcie.msi_blocked),
            csr.tx_frames.eq(es.sent), csr.rx_frames.eq(qs.delivered),
            csr.rx_drop_overflow.eq(es.overflow), csr.rx_drop_no_buf.eq(qs.no_buf),
            csr.rx_drop_disabled.eq(qs.disabled), csr.rx_drop_cq_full.eq(qs.cq_full),
            csr.rx_drop_fcs.eq(es.bad_fcs), csr.rx_drop_runt.eq(es.runt), csr.rx_drop_oversize.eq(es.oversize),
            csr.desc_err_protection.eq(qs.prot), csr.desc_err_zero_len.eq(qs.zero),
            csr.db_ignored.eq(qs.db_ignored), csr.queue_faults.eq(qs.fault),
            csr.cpl_dropped.eq(qs.cpl_dropped), csr.cq_irqs.eq(qs.cq_irqs), csr.cq_db_ignored.eq(qs.cq_db_ignored),
            csr.tx_too_long.eq(qs.too_long),
        ]
        return m
