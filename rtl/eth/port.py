"""The Ethernet port: MAC transmit and receive, and the receive buffer."""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..packet_fifo import PacketFifo
from ..queues.rx import rx_meta_layout
from ..streams import bytes_layout
from .mac import MIN_FRAME, MacRx, MacTx, RxError

__all__ = ["EthPort", "EthStatsSignature"]


class EthStatsSignature(wiring.Signature):
    """Counter pulses of the Ethernet port."""

    NAMES = ("sent", "overflow", "bad_fcs", "runt", "oversize")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


class EthPort(wiring.Component):
    """
    i_frame       In(stream(bytes_layout)): frames to send (no FCS)
    o_wire        Out(stream(bytes_layout)): frames on the wire, FCS included, paced to the wire rate
    i_wire        In(stream(bytes_layout)): frames from the wire; ``ready`` drops only with
                  ``backpressure`` on (a pause: the receive buffer keeps room for a whole frame)
    o_meta        Out(stream(rx_meta_layout)): length and queue of each good received frame
    o_frame       Out(stream(bytes_layout)): the good received frames, without FCS
    backpressure  In(1)
    core_rst      In(1): soft reset
    stats         Out(EthStatsSignature)
    """

    def __init__(self, config):
        self.config = config
        W = config.data_width
        wire = stream.Signature(bytes_layout(W))
        super().__init__({
            "i_frame": In(wire), "o_wire": Out(wire), "i_wire": In(wire),
            "o_meta": Out(stream.Signature(rx_meta_layout(config.num_queues))), "o_frame": Out(wire),
            "backpressure": In(1), "core_rst": In(1), "stats": Out(EthStatsSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        W = cfg.data_width
        mac_tx = MacTx(W)
        mac_rx = MacRx(W, (cfg.num_queues - 1).bit_length(), cfg.max_frame)
        # As many frame records as minimum-size frames fit: the records never
        # run out before the data space does.
        min_beats = -(-(MIN_FRAME - 4) // cfg.beat_bytes)
        rx_buf = PacketFifo(W, cfg.rx_fifo // cfg.beat_bytes, rx_meta_layout(cfg.num_queues),
                            meta_depth=cfg.rx_fifo // cfg.beat_bytes // min_beats)
        for name, block in (("mac_tx", mac_tx), ("mac_rx", mac_rx), ("rx_buf", rx_buf)):
            m.submodules[name] = ResetInserter(self.core_rst)(block)
        connect(m, flipped(self.i_frame), mac_tx.i_frame)
        connect(m, mac_tx.o_wire, flipped(self.o_wire))
        connect(m, flipped(self.i_wire), mac_rx.i_wire)
        mf, bi = mac_rx.o_frame.payload, rx_buf.i_pkt.payload
        m.d.comb += [
            rx_buf.i_pkt.valid.eq(mac_rx.o_frame.valid), mac_rx.o_frame.ready.eq(rx_buf.i_pkt.ready),
            bi.data.eq(mf.data), bi.nbytes.eq(mf.nbytes), bi.last.eq(mf.last),
            bi.drop.eq(mf.error != RxError.OK), bi.meta.length.eq(mf.length), bi.meta.queue.eq(mf.queue),
            rx_buf.stall.eq(0),
            # Pause the wire while the receive buffer could not take one more whole frame.
            self.i_wire.ready.eq(mac_rx.i_wire.ready & (~self.backpressure | (
                rx_buf.level < (cfg.rx_fifo - cfg.max_frame) // cfg.beat_bytes - 16))),
        ]
        connect(m, rx_buf.o_meta, flipped(self.o_meta))
        connect(m, rx_buf.o_pkt, flipped(self.o_frame))
        rx_end = mac_rx.o_frame.valid & mac_rx.o_frame.ready & mf.last
        st = self.stats
        m.d.comb += [
            st.sent.eq(mac_tx.sent), st.overflow.eq(rx_buf.overflow),
            st.bad_fcs.eq(rx_end & (mf.error == RxError.BAD_FCS)),
            st.runt.eq(rx_end & (mf.error == RxError.RUNT)),
            st.oversize.eq(rx_end & (mf.error == RxError.OVERSIZE)),
        ]
        return m
