"""The queue subsystem: descriptor rings, the transmit and receive engines and
the completion writer, with their registers; it registers its DMA clients and
its interrupt source with the PCIe subsystem, and asks the register file for
the tables that serve its register blocks (per-queue and per-completion-queue
registers, doorbell pages)."""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..streams import bytes_layout
from .common import MrRegs
from .cpl import CplWriter
from .desc import DescQueues
from .rx import RxEngine, rx_meta_layout
from .tx import TxEngine

__all__ = ["QueueSubsystem", "QueueStatsSignature"]


class QueueStatsSignature(wiring.Signature):
    """Counter pulses of the queue subsystem."""

    NAMES = ("prot", "zero", "db_ignored", "fault", "cpl_dropped", "cq_irqs", "cq_db_ignored", "too_long",
             "delivered", "no_buf", "disabled", "cq_full")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


class QueueSubsystem(wiring.Component):
    """
    o_frame       Out(stream(bytes_layout)): frames to send
    i_meta        In(stream(rx_meta_layout)): length and queue of each received frame
    i_frame       In(stream(bytes_layout)): the received frames
    backpressure  In(1): hold a frame whose queue has no buffer instead of dropping it
    now           In(32): the cycle counter, for completion timestamps
    core_rst      In(1): soft reset
    stats         Out(QueueStatsSignature)

    ``csr`` is the register file: its tables serve the queue, completion-queue
    and doorbell registers, its region registers drive the protection check;
    ``pcie`` the PCIe subsystem it takes DMA clients and an interrupt source from.
    """

    def __init__(self, config, csr, pcie):
        self.config = config
        self._csr = csr
        W = config.data_width
        tables = {name: csr.add_table(name) for name in ("TXQ", "RXQ", "CQ", "TXQ_DB", "RXQ_DB", "CQ_DB")}
        mrs = [MrRegs(csr, config, k) for k in range(config.num_mrs)]
        # Built here, not when elaborated: their read ports on the tables'
        # memories must exist before the register file is elaborated.
        self._desc = DescQueues(config, tables, mrs)
        self._cplw = CplWriter(config, tables)
        self._rd_desc = pcie.add_read_client("desc")
        self._rd_tx = pcie.add_read_client("tx")
        self._wr_rx = pcie.add_write_client("rx")
        self._wr_cpl = pcie.add_write_client("cpl")
        self._irq = pcie.add_irq("cq")
        super().__init__({
            "o_frame": Out(stream.Signature(bytes_layout(W))),
            "i_meta": In(stream.Signature(rx_meta_layout(config.num_queues))),
            "i_frame": In(stream.Signature(bytes_layout(W))),
            "backpressure": In(1), "now": In(32), "core_rst": In(1),
            "stats": Out(QueueStatsSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        desc, cplw = self._desc, self._cplw
        txe = TxEngine(cfg)
        rxe = RxEngine(cfg)
        for name, block in (("desc", desc), ("txe", txe), ("rxe", rxe), ("cplw", cplw)):
            m.submodules[name] = ResetInserter(self.core_rst)(block)

        connect(m, desc.tx, txe.chain)
        connect(m, desc.rx, rxe.chain)
        connect(m, txe.cpl, cplw.i_tx)
        connect(m, rxe.cpl, cplw.i_rx)
        connect(m, desc.claim, cplw.claim)
        for k in range(len(desc.retire)):
            connect(m, cplw.retire[k], desc.retire[k])
        connect(m, desc.dma, self._rd_desc)
        connect(m, txe.dma, self._rd_tx)
        connect(m, rxe.dma, self._wr_rx)
        connect(m, cplw.dma, self._wr_cpl)
        connect(m, txe.o_frame, flipped(self.o_frame))
        connect(m, flipped(self.i_meta), rxe.i_meta)
        connect(m, flipped(self.i_frame), rxe.i_frame)
        st = self.stats
        m.d.comb += [
            self._irq.eq(cplw.irq), cplw.now.eq(self.now), rxe.backpressure.eq(self.backpressure),
            st.prot.eq(desc.prot), st.zero.eq(desc.zero), st.db_ignored.eq(desc.db_ignored), st.fault.eq(desc.fault),
            st.cpl_dropped.eq(cplw.dropped), st.cq_irqs.eq(cplw.irqs), st.cq_db_ignored.eq(cplw.db_ignored),
            st.too_long.eq(txe.too_long), st.delivered.eq(rxe.delivered), st.no_buf.eq(rxe.no_buf),
            st.disabled.eq(rxe.disabled), st.cq_full.eq(rxe.cq_full),
        ]
        return m
