# Ref: PCI Express Base Specification 4.0, §2.2.7 (memory write requests),
# §2.2.5 (byte enables), §2.2.2 (Max_Payload_Size; no request crosses 4 KiB).
"""DMA write engine: a packed byte stream to host memory."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..pcie.be import request_bes
from ..pcie.cfg import PcieCfgSignature
from ..pcie.tlp import TlpStream, mem_request_header
from ..lib.stream import BufferedFifo, RegisterSlice, registered_head
from ..regmap import DmaStatus
from .layouts import LEN_BITS, STATUS_BITS, write_data_layout, write_req_layout, write_resp_layout

__all__ = ["DmaWriteEngine", "WriteStatsSignature"]

#: Statuses the engine holds for its client.
RESP_DEPTH = 4


class WriteStatsSignature(wiring.Signature):
    NAMES = ("ops", "tlps", "bus_master", "zero_len")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


class DmaWriteEngine(wiring.Component):
    """Writes byte streams to host memory with MemWr TLPs.

    Each request is cut at ``max_payload_size`` boundaries (so no TLP crosses a
    4 KiB boundary) and its bytes are shifted to the byte offset of each TLP's
    address through a two-beat realignment register, so TLPs follow each other
    with no idle cycle. The TLPs leave through a register slice (so the
    arbiter's ``ready`` reaches no logic here), and a request's status is
    given only once its last TLP has left the slice into the arbiter. With
    bus mastering off a request's bytes are consumed
    and dropped and it ends with ``BUS_MASTER``; a zero-length request ends at
    once with ``ZERO_LENGTH``.

    req    In(stream(write_req_layout))
    data   In(stream(write_data_layout)): the requests' bytes, packed (``nbytes`` per beat)
    resp   Out(stream(write_resp_layout)): one status per request, in order
    o_tlp  Out(TlpStream): MemWr requests
    cfg    In(PcieCfgSignature)
    busy   Out(1)
    stats  Out(WriteStatsSignature)
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "req": In(stream.Signature(write_req_layout())),
            "data": In(stream.Signature(write_data_layout(config.data_width))),
            "resp": Out(stream.Signature(write_resp_layout())),
            "o_tlp": Out(TlpStream(config.data_width)),
            "cfg": In(PcieCfgSignature()),
            "busy": Out(1),
            "stats": Out(WriteStatsSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, WB = cfg.data_width, cfg.beat_bytes
        LB = WB.bit_length() - 1
        MPS = cfg.max_payload_size
        st = self.stats

        # ------------------------------------------------------------ splitter
        # One record per TLP, with what its first beat needs worked out on
        # the way in (DWORD count, byte enables, bytes taken, whether it is
        # also the last), so that the output side decides from registers.
        chunk_l = data.StructLayout({
            "addr": 64, "len": 13, "last": 1, "drop": 1, "status": STATUS_BITS,
            "dws": 11, "first_be": 4, "last_be": 4, "take": LB + 1, "eop": 1, "nbytes": LB + 1,
            "zero": 1, "send": 1,
        })
        # Block RAM (in distributed RAM it takes some 170 logic cells, and
        # saves 4.6 ns on a path that is not the longest).
        chunk_fifo = m.submodules.chunk_fifo = BufferedFifo(width=chunk_l.size, depth=4)
        # Its head is registered in flip-flops, so that the output side
        # decides from registers, not from the block RAM's output.
        head = registered_head(m, "chunk_head", chunk_fifo, chunk_l)
        resp_fifo = m.submodules.resp_fifo = fifo.SyncFIFOBuffered(width=STATUS_BITS, depth=RESP_DEPTH)

        sp_act = Signal()
        sp_addr = Signal(64)
        sp_rem = Signal(LEN_BITS)
        sp_drop = Signal()
        mps = Signal(13, init=128)            # from a register: the configuration is static
        m.d.sync += mps.eq(Mux((Const(128, 13) << self.cfg.mps) > MPS, MPS, Const(128, 13) << self.cfg.mps))
        to_boundary = mps - (sp_addr[:13] & (mps - 1))
        clen = Signal(13)
        m.d.comb += clen.eq(Mux(sp_rem < to_boundary, sp_rem, to_boundary))

        # The cut is registered (``pre``) before what its first beat needs is
        # worked out, so that no path runs from the cut's arithmetic through
        # the byte-enable arithmetic.
        pre_l = data.StructLayout({"addr": 64, "len": 13, "last": 1, "drop": 1, "status": STATUS_BITS})
        w = Signal(pre_l)
        pre = Signal(pre_l)
        pre_v = Signal()
        w_en = Signal()
        w_rdy = Signal()
        m.d.comb += w_rdy.eq(~pre_v | chunk_fifo.w_rdy)
        with m.If(w_rdy):
            m.d.sync += [pre_v.eq(w_en), pre.eq(w)]
        c_w = Signal(chunk_l)
        m.d.comb += [c_w.addr.eq(pre.addr), c_w.len.eq(pre.len), c_w.last.eq(pre.last), c_w.drop.eq(pre.drop),
                     c_w.status.eq(pre.status), chunk_fifo.w_data.eq(c_w),
                     chunk_fifo.w_en.eq(pre_v & chunk_fifo.w_rdy)]
        w_dws, w_first_be, w_last_be = request_bes(m, pre.addr[:2], pre.len, 13)
        w_room = WB - pre.addr[:2]
        m.d.comb += [c_w.dws.eq(w_dws), c_w.first_be.eq(w_first_be), c_w.last_be.eq(w_last_be),
                     c_w.take.eq(Mux(pre.len < w_room, pre.len, w_room)), c_w.eop.eq(pre.len <= w_room),
                     c_w.nbytes.eq(Mux((w_dws << 2) > WB, WB, w_dws << 2)),
                     c_w.zero.eq(pre.len == 0), c_w.send.eq((pre.len != 0) & ~pre.drop)]
        req = self.req.payload
        with m.If(~sp_act & w_rdy):
            m.d.comb += self.req.ready.eq(1)
        with m.If(self.req.valid & self.req.ready):
            with m.If(req.len == 0):
                m.d.comb += [w_en.eq(1), w.last.eq(1), w.status.eq(DmaStatus.ZERO_LENGTH),
                             st.zero_len.eq(1)]
            with m.Elif(req.len <= mps - (req.addr[:13] & (mps - 1))):
                # One chunk: straight in, so that short requests go at one a cycle.
                m.d.comb += [st.bus_master.eq(~self.cfg.bus_master), w_en.eq(1),
                             w.addr.eq(req.addr), w.len.eq(req.len[:13]), w.last.eq(1),
                             w.drop.eq(~self.cfg.bus_master),
                             w.status.eq(Mux(self.cfg.bus_master, DmaStatus.OK, DmaStatus.BUS_MASTER))]
            with m.Else():
                m.d.comb += st.bus_master.eq(~self.cfg.bus_master)
                m.d.sync += [sp_act.eq(1), sp_addr.eq(req.addr), sp_rem.eq(req.len),
                             sp_drop.eq(~self.cfg.bus_master)]
        with m.Elif(sp_act & w_rdy):
            m.d.comb += [w_en.eq(1), w.addr.eq(sp_addr), w.len.eq(clen), w.last.eq(clen == sp_rem),
                         w.drop.eq(sp_drop), w.status.eq(Mux(sp_drop, DmaStatus.BUS_MASTER, DmaStatus.OK))]
            m.d.sync += [sp_addr.eq(sp_addr + clen), sp_rem.eq(sp_rem - clen)]
            with m.If(clen == sp_rem):
                m.d.sync += sp_act.eq(0)

        # --------------------------------------------------- realignment register
        acc = Signal(2 * W)
        cnt = Signal(LB + 2)          # valid bytes in acc, 0 .. 2 * WB

        # Input side: the requests' bytes, packed; each beat says how many it holds.
        in_bytes = Signal(LB + 1)
        m.d.comb += in_bytes.eq(Mux(self.data.payload.nbytes < WB, self.data.payload.nbytes, WB))

        # Output side: the chunk at the head of the FIFO becomes one TLP. Its
        # first beat is described by the record; each later beat by registers
        # set as the previous one goes (bytes left, bytes and DWORD-padded
        # bytes of the next beat, whether it ends the TLP).
        c = head.payload
        o_started = Signal()
        o_rem = Signal(13)
        o_pad = Signal(14)
        o_take = Signal(LB + 1)
        o_eop = Signal()
        o_nbytes = Signal(LB + 1)
        cur_rem = Mux(o_started, o_rem, c.len)
        off = Mux(o_started, 0, c.addr[:2])
        take = Signal(LB + 1)
        m.d.comb += take.eq(Mux(o_started, o_take, c.take))
        is_eop = Mux(o_started, o_eop, c.eop)
        pad = Mux(o_started, o_pad, c.dws << 2)
        have = head.valid & (cnt >= take)
        zero_op = head.valid & c.zero

        # Statuses. The TLPs go to the arbiter through a register slice, and a
        # request's status is written only as its last TLP's last beat leaves
        # the slice (passes into the arbiter), so nothing the client does
        # after the status can overtake the data. A status slot is reserved
        # as a request's last TLP starts (once started, a TLP never waits for
        # one); a refused or empty request, whose status is written at once,
        # waits until no status is still inside the slice, so statuses stay
        # in request order.
        room = Signal(range(RESP_DEPTH + 1), init=RESP_DEPTH)   # status slots neither filled nor reserved
        in_slice = Signal(2)          # statuses reserved by TLPs still inside the slice
        immediate = ~c.send
        resp_ok = ~(~o_started & c.last) | ((room != 0) & (~immediate | (in_slice == 0)))

        sl = m.submodules.o_slice = RegisterSlice(data.StructLayout({
            "tlp": self.o_tlp.payload.shape(), "done": 1, "status": STATUS_BITS}))
        t = sl.i_stream
        o = t.payload.tlp
        h = o.hdr.req
        shifted = Signal(W)
        keep = Signal(W)
        m.d.comb += keep.eq(Cat(*[Mux(take > j, Const(0xFF, 8), Const(0, 8)) for j in range(WB)]))
        m.d.comb += shifted.eq((acc[:W] & keep) << (off << 3))
        m.d.comb += mem_request_header(h, addr=c.addr, dws=c.dws, first_be=c.first_be, last_be=c.last_be,
                                       requester_id=self.cfg.requester_id, write=True)
        m.d.comb += [
            o.data.eq(shifted),
            o.nbytes.eq(Mux(o_started, o_nbytes, c.nbytes)),
            o.sop.eq(~o_started),
            o.eop.eq(is_eop),
            t.payload.done.eq(is_eop & c.last),
            t.payload.status.eq(c.status),
            t.valid.eq(have & c.send & resp_ok),
        ]
        m.d.comb += [self.o_tlp.payload.eq(sl.o_stream.payload.tlp), self.o_tlp.valid.eq(sl.o_stream.valid),
                     sl.o_stream.ready.eq(self.o_tlp.ready)]
        out_fire = Signal()
        m.d.comb += out_fire.eq(have & resp_ok & ~c.zero & (t.ready | c.drop))
        m.d.comb += st.tlps.eq(t.valid & t.ready & ~o_started)

        passed = sl.o_stream.valid & sl.o_stream.ready & sl.o_stream.payload.done
        reserve = Signal()
        direct = Signal()
        m.d.comb += reserve.eq((out_fire & ~o_started & c.last) | (zero_op & resp_ok))
        with m.If(zero_op & resp_ok):
            m.d.comb += [head.ready.eq(1), direct.eq(1), st.ops.eq(1)]
        with m.If(out_fire):
            with m.If(is_eop):
                m.d.comb += head.ready.eq(1)
                m.d.sync += o_started.eq(0)
                with m.If(c.last):
                    m.d.comb += st.ops.eq(1)
                    with m.If(c.drop):
                        m.d.comb += direct.eq(1)
            with m.Else():
                left = Signal(13)
                m.d.comb += left.eq(cur_rem - take)
                m.d.sync += [o_started.eq(1), o_rem.eq(left), o_take.eq(Mux(left < WB, left, WB)),
                             o_eop.eq(left <= WB), o_pad.eq(pad - WB),
                             o_nbytes.eq(Mux(pad - WB > WB, WB, pad - WB))]
        m.d.comb += [resp_fifo.w_en.eq(direct | passed), resp_fifo.w_data.eq(Mux(passed, sl.o_stream.payload.status,
                                                                                  c.status))]
        m.d.sync += [room.eq(room - reserve + (self.resp.valid & self.resp.ready)),
                     in_slice.eq(in_slice + (reserve & ~immediate) - passed)]

        # Register update: what comes in goes in at byte ``cnt`` (a register,
        # so that shift runs beside the output's decision), then what went out
        # is shifted off. Bytes at and above ``cnt`` are don't-care: a beat
        # not taken leaves only such bytes behind, and the TLP's bytes past
        # what it takes are cleared on the way out. The count after both
        # outcomes of the output's decision (``take`` bytes gone, or none) is
        # computed beside it, which then only picks one.
        cnt_less = Signal(LB + 2)
        m.d.comb += cnt_less.eq(cnt - take)
        m.d.comb += self.data.ready.eq(Mux(out_fire, cnt_less <= WB, cnt <= WB))
        in_fire = self.data.valid & self.data.ready
        placed = Signal(3 * W)
        m.d.comb += placed.eq(self.data.payload.data << (cnt << 3))
        merged = Signal(3 * W)
        m.d.comb += merged.eq(Cat(*[Mux(cnt > j, acc.word_select(j, 8) if j < 2 * WB else Const(0, 8),
                                        placed.word_select(j, 8)) for j in range(3 * WB)]))
        grown, grown_less = Signal(LB + 2), Signal(LB + 2)
        m.d.comb += [grown.eq(cnt + in_bytes), grown_less.eq(cnt_less + in_bytes)]
        m.d.sync += [acc.eq((merged >> (Mux(out_fire, take, 0) << 3))[:2 * W]),
                     cnt.eq(Mux(in_fire, Mux(out_fire, grown_less, grown), Mux(out_fire, cnt_less, cnt)))]
        m.d.comb += [
            self.resp.valid.eq(resp_fifo.r_rdy),
            self.resp.payload.status.eq(resp_fifo.r_data),
            resp_fifo.r_en.eq(self.resp.ready),
            self.busy.eq(sp_act | pre_v | (chunk_fifo.level != 0) | head.valid | o_started | (cnt != 0)
                         | resp_fifo.r_rdy | sl.o_stream.valid | (in_slice != 0)),
        ]
        return m
