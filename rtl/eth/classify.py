"""Receive classifier: received frames go to the queues, or to another engine
when their EtherType is the one it claims."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import bytes_layout

__all__ = ["RxClassifier"]


class RxClassifier(wiring.Component):
    """Splits the receive buffer's output by EtherType.

    A frame whose ``meta.ethertype`` equals ``match`` (when ``match`` is not
    0) goes to the engine outputs, every other frame to the queue outputs.
    Records and frames travel separately (a record may run ahead of the
    frames before it, as the receive engine's planner wants); the decision
    taken for each record goes into a small FIFO for its frame as soon as the
    record arrives, before the record is taken (the planner takes a record
    only once its frame's DMA writes are under way). Neither output
    may hold the other for long: the engine must take what it is given.

    i_meta, i_frame  In: records (``meta_layout``, with ``ethertype``) and frames
    o_meta, o_frame  Out: to the queues
    e_meta, e_frame  Out: to the engine
    match            In(16): the engine's EtherType, 0 for none
    """

    def __init__(self, data_width, meta_layout, depth=32):
        self._depth = depth
        meta = stream.Signature(meta_layout)
        frame = stream.Signature(bytes_layout(data_width))
        super().__init__({"i_meta": In(meta), "i_frame": In(frame), "o_meta": Out(meta), "o_frame": Out(frame),
                          "e_meta": Out(meta), "e_frame": Out(frame), "match": In(16)})

    def elaborate(self, platform):
        m = Module()
        route = m.submodules.route = fifo.SyncFIFOBuffered(width=1, depth=self._depth)

        # Records: decide, and hand the decision to the frame side at once (the
        # receive planner takes a record only once the DMA writes of its frame
        # are under way, so the frame must not wait for the record to leave);
        # then pass the record on.
        im = self.i_meta
        routed = Signal()          # the record at the input has its decision in the FIFO
        decided = Signal()         # ... and this is it
        now = (self.match != 0) & (im.payload.ethertype == self.match)
        to_engine = Mux(routed, decided, now)
        can = routed | route.w_rdy
        out_ready = Mux(to_engine, self.e_meta.ready, self.o_meta.ready)
        m.d.comb += [
            self.o_meta.payload.eq(im.payload), self.e_meta.payload.eq(im.payload),
            self.o_meta.valid.eq(im.valid & can & ~to_engine),
            self.e_meta.valid.eq(im.valid & can & to_engine),
            im.ready.eq(can & out_ready),
            route.w_en.eq(im.valid & ~routed & route.w_rdy), route.w_data.eq(now),
        ]
        with m.If(im.valid & im.ready):
            m.d.sync += routed.eq(0)
        with m.Elif(route.w_en):
            m.d.sync += [routed.eq(1), decided.eq(now)]

        # Frames: each follows the decision taken for its record.
        fr = self.i_frame
        engine = route.r_data[0]
        m.d.comb += [
            self.o_frame.payload.eq(fr.payload), self.e_frame.payload.eq(fr.payload),
            self.o_frame.valid.eq(fr.valid & route.r_rdy & ~engine),
            self.e_frame.valid.eq(fr.valid & route.r_rdy & engine),
            fr.ready.eq(route.r_rdy & Mux(engine, self.e_frame.ready, self.o_frame.ready)),
            route.r_en.eq(fr.valid & fr.ready & fr.payload.last),
        ]
        return m
