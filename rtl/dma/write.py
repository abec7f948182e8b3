# Ref: PCI Express Base Specification 4.0, §2.2.7 (memory write requests),
# §2.2.5 (byte enables), §2.2.2 (Max_Payload_Size; no request crosses 4 KiB).
"""DMA write engine: a packed byte stream to host memory."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..pcie.be import request_bes
from ..pcie.cfg import PcieCfgSignature
from ..pcie.tlp import TlpStream, mem_request_header
from ..lib.stream import BufferedFifo
from ..regmap import DmaStatus
from .layouts import LEN_BITS, STATUS_BITS, write_data_layout, write_req_layout, write_resp_layout

__all__ = ["DmaWriteEngine", "WriteStatsSignature"]


class WriteStatsSignature(wiring.Signature):
    NAMES = ("ops", "tlps", "bus_master", "zero_len")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


class DmaWriteEngine(wiring.Component):
    """Writes byte streams to host memory with MemWr TLPs.

    Each request is cut at ``max_payload_size`` boundaries (so no TLP crosses a
    4 KiB boundary) and its bytes are shifted to the byte offset of each TLP's
    address through a two-beat realignment register, so TLPs follow each other
    with no idle cycle. With bus mastering off a request's bytes are consumed
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
        # Chunk records: addr(64) len(13) last(1) drop(1) status(4)
        chunk_fifo = m.submodules.chunk_fifo = BufferedFifo(width=64 + 13 + 1 + 1 + STATUS_BITS, depth=4)
        resp_fifo = m.submodules.resp_fifo = fifo.SyncFIFOBuffered(width=STATUS_BITS, depth=4)

        sp_act = Signal()
        sp_addr = Signal(64)
        sp_rem = Signal(LEN_BITS)
        sp_drop = Signal()
        mps = Signal(13)
        m.d.comb += mps.eq(Mux((Const(128, 13) << self.cfg.mps) > MPS, MPS, Const(128, 13) << self.cfg.mps))
        to_boundary = mps - (sp_addr[:13] & (mps - 1))
        clen = Signal(13)
        m.d.comb += clen.eq(Mux(sp_rem < to_boundary, sp_rem, to_boundary))

        req = self.req.payload
        with m.If(~sp_act & chunk_fifo.w_rdy):
            m.d.comb += self.req.ready.eq(1)
        with m.If(self.req.valid & self.req.ready):
            with m.If(req.len == 0):
                m.d.comb += [chunk_fifo.w_en.eq(1),
                             chunk_fifo.w_data.eq(Cat(Const(0, 64), Const(0, 13), Const(1, 1), Const(0, 1),
                                                      Const(DmaStatus.ZERO_LENGTH, STATUS_BITS))),
                             st.zero_len.eq(1)]
            with m.Elif(req.len <= mps - (req.addr[:13] & (mps - 1))):
                # One chunk: straight in, so that short requests go at one a cycle.
                m.d.comb += [st.bus_master.eq(~self.cfg.bus_master), chunk_fifo.w_en.eq(1),
                             chunk_fifo.w_data.eq(Cat(req.addr, req.len[:13], Const(1, 1), ~self.cfg.bus_master,
                                                      Mux(self.cfg.bus_master, DmaStatus.OK, DmaStatus.BUS_MASTER)))]
            with m.Else():
                m.d.comb += st.bus_master.eq(~self.cfg.bus_master)
                m.d.sync += [sp_act.eq(1), sp_addr.eq(req.addr), sp_rem.eq(req.len),
                             sp_drop.eq(~self.cfg.bus_master)]
        with m.Elif(sp_act & chunk_fifo.w_rdy):
            m.d.comb += [chunk_fifo.w_en.eq(1),
                         chunk_fifo.w_data.eq(Cat(sp_addr, clen, clen == sp_rem, sp_drop,
                                                  Mux(sp_drop, DmaStatus.BUS_MASTER, DmaStatus.OK)))]
            m.d.sync += [sp_addr.eq(sp_addr + clen), sp_rem.eq(sp_rem - clen)]
            with m.If(clen == sp_rem):
                m.d.sync += sp_act.eq(0)

        # --------------------------------------------------- realignment register
        acc = Signal(2 * W)
        cnt = Signal(LB + 2)          # valid bytes in acc, 0 .. 2 * WB

        # Input side: the requests' bytes, packed; each beat says how many it holds.
        in_bytes = Signal(LB + 1)
        m.d.comb += in_bytes.eq(Mux(self.data.payload.nbytes < WB, self.data.payload.nbytes, WB))

        # Output side: the chunk at the head of the FIFO becomes one TLP.
        c_addr = chunk_fifo.r_data[:64]
        c_len = chunk_fifo.r_data[64:77]
        c_last = chunk_fifo.r_data[77]
        c_drop = chunk_fifo.r_data[78]
        c_status = chunk_fifo.r_data[79:79 + STATUS_BITS]
        o_started = Signal()
        o_rem = Signal(13)
        o_pad = Signal(14)
        dws, first_be, last_be = request_bes(m, c_addr[:2], c_len, 13)
        cur_rem = Mux(o_started, o_rem, c_len)
        off = Mux(o_started, 0, c_addr[:2])
        take = Signal(LB + 1)
        m.d.comb += take.eq(Mux(cur_rem < WB - off, cur_rem, WB - off))
        is_eop = take == cur_rem
        pad = Mux(o_started, o_pad, dws << 2)
        have = chunk_fifo.r_rdy & (cnt >= take)
        zero_op = chunk_fifo.r_rdy & (c_len == 0)
        # A request's last TLP starts only when its status will have room: once
        # started, a TLP never waits on the status FIFO (it holds the link).
        resp_ok = ~(~o_started & c_last) | resp_fifo.w_rdy

        o = self.o_tlp.payload
        h = o.hdr.req
        shifted = Signal(W)
        m.d.comb += shifted.eq(acc[:W] << (off << 3))
        m.d.comb += mem_request_header(h, addr=c_addr, dws=dws, first_be=first_be, last_be=last_be,
                                       requester_id=self.cfg.requester_id, write=True)
        m.d.comb += [
            o.data.eq(shifted),
            o.nbytes.eq(Mux(pad > WB, WB, pad)),
            o.sop.eq(~o_started),
            o.eop.eq(is_eop),
            self.o_tlp.valid.eq(have & ~c_drop & (c_len != 0) & resp_ok),
        ]
        out_fire = Signal()
        m.d.comb += out_fire.eq((self.o_tlp.valid & self.o_tlp.ready)
                                | (have & c_drop & (c_len != 0) & resp_ok))
        m.d.comb += st.tlps.eq(self.o_tlp.valid & self.o_tlp.ready & ~o_started)

        with m.If(zero_op & resp_fifo.w_rdy):
            m.d.comb += [chunk_fifo.r_en.eq(1), resp_fifo.w_en.eq(1), resp_fifo.w_data.eq(c_status),
                         st.ops.eq(1)]
        with m.If(out_fire):
            with m.If(is_eop):
                m.d.comb += chunk_fifo.r_en.eq(1)
                m.d.sync += o_started.eq(0)
                with m.If(c_last):
                    m.d.comb += [resp_fifo.w_en.eq(1), resp_fifo.w_data.eq(c_status), st.ops.eq(1)]
            with m.Else():
                m.d.sync += [o_started.eq(1), o_rem.eq(cur_rem - take), o_pad.eq(pad - WB)]

        # Register update: drop what went out, append what came in.
        out_take = Signal(LB + 1)
        m.d.comb += out_take.eq(Mux(out_fire, take, 0))
        cnt_after = Signal(LB + 2)
        m.d.comb += cnt_after.eq(cnt - out_take)
        m.d.comb += self.data.ready.eq(cnt_after <= WB)
        in_fire = self.data.valid & self.data.ready
        in_mask = Signal(W)
        m.d.comb += in_mask.eq(Cat(*[Mux(j < in_bytes, Const(0xFF, 8), Const(0, 8)) for j in range(WB)]))
        appended = Signal(2 * W)
        m.d.comb += appended.eq(Mux(in_fire, (self.data.payload.data & in_mask), 0) << (cnt_after << 3))
        kept = Signal(2 * W)
        m.d.comb += kept.eq(acc >> (out_take << 3))
        m.d.sync += [acc.eq(kept | appended), cnt.eq(cnt_after + Mux(in_fire, in_bytes, 0))]

        m.d.comb += [
            self.resp.valid.eq(resp_fifo.r_rdy),
            self.resp.payload.status.eq(resp_fifo.r_data),
            resp_fifo.r_en.eq(self.resp.ready),
            self.busy.eq(sp_act | chunk_fifo.r_rdy | o_started
                         | (cnt != 0) | resp_fifo.r_rdy),
        ]
        return m
