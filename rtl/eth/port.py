"""The Ethernet port: MAC transmit and receive, the receive buffer, the
receive classifier and the transmit arbiter.

Frames to send come from the queues and from an engine (``i_engine_frame``),
merged a frame at a time. Received frames go to the queues, or to the engine
when their EtherType is ``engine_ethertype``."""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..lib.arbiter import PacketArbiter
from ..lib.stream import register_slice
from ..packet_fifo import PacketFifo
from ..queues.rx import rx_meta_layout
from ..streams import bytes_layout
from .classify import RxClassifier
from .mac import MIN_FRAME, MacRx, MacTx, RxError

__all__ = ["EthPort", "EthStatsSignature"]


class EthStatsSignature(wiring.Signature):
    """Counter pulses of the Ethernet port."""

    NAMES = ("sent", "overflow", "bad_fcs", "runt", "oversize")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


class EthPort(wiring.Component):
    """
    i_frame       In(stream(bytes_layout)): frames to send (no FCS), from the queues
    i_engine_frame  In(stream(bytes_layout)): frames to send from an engine
    o_wire        Out(stream(bytes_layout)): frames on the wire, FCS included, paced to the wire rate
    i_wire        In(stream(bytes_layout)): frames from the wire; ``ready`` drops only with
                  ``backpressure`` on (a pause: the receive buffer keeps room for a whole frame)
    o_meta        Out(stream(rx_meta_layout)): length and queue of each good received frame
    o_frame       Out(stream(bytes_layout)): the good received frames, without FCS
    e_meta, e_frame  Out: the same, for frames of the engine's EtherType
    engine_ethertype In(16): the EtherType that goes to the engine (0: none)
    backpressure  In(1)
    core_rst      In(1): soft reset
    stats         Out(EthStatsSignature)
    """

    def __init__(self, config):
        self.config = config
        W = config.data_width
        wire = stream.Signature(bytes_layout(W))
        super().__init__({
            "i_frame": In(wire), "i_engine_frame": In(wire), "o_wire": Out(wire), "i_wire": In(wire),
            "o_meta": Out(stream.Signature(rx_meta_layout(config.num_queues))), "o_frame": Out(wire),
            "e_meta": Out(stream.Signature(rx_meta_layout(config.num_queues))), "e_frame": Out(wire),
            "engine_ethertype": In(16),
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
        wire = stream.Signature(bytes_layout(W))
        tx_arb = PacketArbiter(wire, 2, last=lambda p: p.last)
        classify = RxClassifier(W, rx_meta_layout(cfg.num_queues))
        for name, block in (("mac_tx", mac_tx), ("mac_rx", mac_rx), ("rx_buf", rx_buf), ("tx_arb", tx_arb),
                            ("classify", classify)):
            m.submodules[name] = ResetInserter(self.core_rst)(block)
        from_queues, from_engine = tx_arb.inputs()
        connect(m, flipped(self.i_frame), from_queues)
        connect(m, flipped(self.i_engine_frame), from_engine)
        # A register slice before the MAC: the arbiter's grant and the MAC's
        # pacing and CRC are decided in different cycles (full throughput,
        # no idle cycle inside a frame).
        register_slice(m, "tx_slice", tx_arb.output(), mac_tx.i_frame, domain_reset=self.core_rst)
        connect(m, mac_tx.o_wire, flipped(self.o_wire))
        connect(m, flipped(self.i_wire), mac_rx.i_wire)
        mf, bi = mac_rx.o_frame.payload, rx_buf.i_pkt.payload
        # The EtherType (bytes 12 and 13, big-endian) lies within one beat.
        et_beat, et_lane = divmod(12, cfg.beat_bytes)
        beat_no = Signal(range(et_beat + 2))
        et_now = (mf.data.word_select(et_lane, 8) << 8) | mf.data.word_select(et_lane + 1, 8)
        et_reg = Signal(16)
        with m.If(mac_rx.o_frame.valid & mac_rx.o_frame.ready):
            with m.If(mf.last):
                m.d.sync += beat_no.eq(0)
            with m.Elif(beat_no <= et_beat):
                m.d.sync += beat_no.eq(beat_no + 1)
            with m.If(beat_no == et_beat):
                m.d.sync += et_reg.eq(et_now)
        m.d.comb += bi.meta.ethertype.eq(Mux(beat_no == et_beat, et_now, et_reg))
        m.d.comb += [
            rx_buf.i_pkt.valid.eq(mac_rx.o_frame.valid), mac_rx.o_frame.ready.eq(rx_buf.i_pkt.ready),
            bi.data.eq(mf.data), bi.nbytes.eq(mf.nbytes), bi.last.eq(mf.last),
            bi.drop.eq(mf.error != RxError.OK), bi.meta.length.eq(mf.length), bi.meta.queue.eq(mf.queue),
            rx_buf.stall.eq(0),
            # Pause the wire while the receive buffer could not take one more whole frame.
            self.i_wire.ready.eq(mac_rx.i_wire.ready & (~self.backpressure | (
                rx_buf.level < (cfg.rx_fifo - cfg.max_frame) // cfg.beat_bytes - 16))),
        ]
        # The classifier decides from a register, not from the receive
        # buffer's block RAM (its records are read out of one; a forward
        # register: the classifier's ready comes from its route FIFO).
        register_slice(m, "rx_buf_meta_slice", rx_buf.o_meta, classify.i_meta, domain_reset=self.core_rst,
                       skid=False)
        connect(m, rx_buf.o_pkt, classify.i_frame)
        # Register slices towards the queues: the receive buffer's output and
        # the classifier's decision are not in the receive engine's cycle (the
        # frames' a forward register: the receive engine's frame ready is its
        # DMA data port's, which comes from registers).
        register_slice(m, "rx_meta_slice", classify.o_meta, flipped(self.o_meta), domain_reset=self.core_rst)
        register_slice(m, "rx_frame_slice", classify.o_frame, flipped(self.o_frame), domain_reset=self.core_rst,
                       skid=False)
        connect(m, classify.e_meta, flipped(self.e_meta))
        connect(m, classify.e_frame, flipped(self.e_frame))
        m.d.comb += classify.match.eq(self.engine_ethertype)
        rx_end = mac_rx.o_frame.valid & mac_rx.o_frame.ready & mf.last
        st = self.stats
        m.d.comb += [
            st.sent.eq(mac_tx.sent), st.overflow.eq(rx_buf.overflow),
            st.bad_fcs.eq(rx_end & (mf.error == RxError.BAD_FCS)),
            st.runt.eq(rx_end & (mf.error == RxError.RUNT)),
            st.oversize.eq(rx_end & (mf.error == RxError.OVERSIZE)),
        ]
        return m
