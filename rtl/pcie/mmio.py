# Ref: PCI Express Base Specification 4.0, §2.2.7 (memory requests), §2.2.9 and
# §2.3.1 (completions, Unsupported Request and Completer Abort), §2.3.1.1 (Lower
# Address and Byte Count of read completions).
"""MMIO target: serves host memory requests to BAR0 through the register bus."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..csr import READ_LATENCY, CsrBus
from .be import be_low, read_byte_count
from .tlp import (CplStatus, Fmt, TlpStream, TlpType, FMT_TYPE_MRD32, FMT_TYPE_MRD64,
                  FMT_TYPE_MWR32, FMT_TYPE_MWR64)

__all__ = ["MmioTarget"]


class MmioTarget(wiring.Component):
    """Turns memory requests from the host into register-bus accesses.

    Requests are served one at a time, one DWORD per cycle, in arrival order, so
    a read that follows a write sees it. Reads answer with one CplD. Requests the
    target cannot serve are refused and counted on ``err_bad_req``: a read longer
    than ``mmio_max_dw`` DWORDs gets Completer Abort; a request to another BAR,
    or a non-posted request of another type, gets Unsupported Request; writes
    that are too long, poisoned or aimed elsewhere, and messages, are dropped.

    i_tlp        In(TlpStream): requests from the host
    o_tlp        Out(TlpStream): completions to the host
    csr          Out(CsrBus): register accesses
    completer_id In(16): our bus/device/function
    err_bad_req  Out(1): one cycle per refused request
    """

    def __init__(self, config):
        self._config = config
        aw = (config.bar0_size // 4 - 1).bit_length()
        super().__init__({
            "i_tlp": In(TlpStream(config.data_width)),
            "o_tlp": Out(TlpStream(config.data_width)),
            "csr": Out(CsrBus(aw)),
            "completer_id": In(16),
            "err_bad_req": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, WB, BDW = cfg.data_width, cfg.beat_bytes, cfg.beat_dws
        max_dw = cfg.mmio_max_dw
        lane_bits = BDW.bit_length() - 1
        aw = len(self.csr.addr)

        beat = self.i_tlp.payload
        hdr = beat.hdr.req

        # Request fields, captured from the first beat.
        fmt_type = Signal(7)
        bar = Signal(3)
        dw_addr = Signal(aw)
        addr_lo7 = Signal(7)
        length = Signal(11)
        first_be = Signal(4)
        last_be = Signal(4)
        tag = Signal(8)
        req_id = Signal(16)
        tc = Signal(3)
        attr = Signal(3)

        in_fmt_type = Cat(beat.hdr.req.dw0.type, beat.hdr.req.dw0.fmt[:2])
        in_4dw = beat.hdr.req.dw0.fmt[0]
        in_addr_lo = Mux(in_4dw, hdr.dw3, hdr.dw2)  # address bits 31:2 live here
        in_length = Mux(hdr.dw0.length == 0, 1024, hdr.dw0.length)
        in_has_data = hdr.dw0.fmt[1]
        in_is_mrd = (in_fmt_type == FMT_TYPE_MRD32) | (in_fmt_type == FMT_TYPE_MRD64)
        in_is_mwr = (in_fmt_type == FMT_TYPE_MWR32) | (in_fmt_type == FMT_TYPE_MWR64)
        in_fits = (in_length <= max_dw) & (beat.bar == 0)

        # Read data gathered for the completion.
        rbuf_dws = -(-max_dw // BDW) * BDW
        rbuf = Signal(rbuf_dws * 32)
        idx = Signal(range(max_dw + 1))       # DWORD being issued
        cap = Signal(range(max_dw + 1))       # DWORD being captured
        cap_valid = Signal()
        cpl_status = Signal(3)
        beat_no = Signal(range(max(2, -(-max_dw // BDW) + 1)))

        byte_count = read_byte_count(m, first_be, last_be, length)

        # Completion header (CplD for reads served, Cpl for refused requests).
        o = self.o_tlp.payload
        ch = o.hdr.cpl
        with_data = cpl_status == CplStatus.SC
        m.d.comb += [
            ch.dw0.fmt.eq(Mux(with_data, Fmt.DW3_DATA, Fmt.DW3)),
            ch.dw0.type.eq(TlpType.CPL),
            ch.dw0.tc.eq(tc),
            ch.dw0.attr.eq(attr[:2]),
            ch.dw0.attr2.eq(attr[2]),
            ch.dw0.length.eq(Mux(with_data, length, 0)),
            ch.dw1.byte_count.eq(byte_count),
            ch.dw1.status.eq(cpl_status),
            ch.dw1.completer_id.eq(self.completer_id),
            ch.dw2.lower_address.eq(Mux(with_data, Cat(be_low(first_be), addr_lo7[2:]), 0)),
            ch.dw2.tag.eq(tag),
            ch.dw2.requester_id.eq(req_id),
        ]

        m.d.comb += self.err_bad_req.eq(0)
        # The register bus is driven from flip-flops: the accesses decided
        # from a request beat this cycle reach the register file on the next
        # (in order, so a read that follows a write still sees it), and a
        # read's data lands 1 + READ_LATENCY cycles after its strobe here.
        bus = CsrBus(aw).flip().create(path=("bus",))
        m.d.sync += [self.csr.addr.eq(bus.addr), self.csr.r_stb.eq(bus.r_stb), self.csr.w_stb.eq(bus.w_stb),
                     self.csr.w_be.eq(bus.w_be), self.csr.w_data.eq(bus.w_data)]
        cap_q, cap_valid_q = cap, cap_valid
        for _ in range(READ_LATENCY):
            nxt, nxt_valid = Signal.like(cap), Signal()
            m.d.sync += [nxt.eq(cap_q), nxt_valid.eq(cap_valid_q)]
            cap_q, cap_valid_q = nxt, nxt_valid
        with m.If(cap_valid_q):
            m.d.sync += rbuf.word_select(cap_q, 32).eq(self.csr.r_data)
        settle = Signal(range(READ_LATENCY + 1))

        with m.FSM(name="mmio"):
            with m.State("Idle"):
                m.d.sync += [idx.eq(0), cap_valid.eq(0), beat_no.eq(0)]
                with m.If(self.i_tlp.valid):
                    m.d.sync += [
                        fmt_type.eq(in_fmt_type), bar.eq(beat.bar),
                        dw_addr.eq(in_addr_lo[2:2 + aw]), addr_lo7.eq(in_addr_lo[:7]),
                        length.eq(in_length), first_be.eq(hdr.dw1.first_be), last_be.eq(hdr.dw1.last_be),
                        tag.eq(hdr.dw1.tag), req_id.eq(hdr.dw1.requester_id),
                        tc.eq(hdr.dw0.tc), attr.eq(Cat(hdr.dw0.attr, hdr.dw0.attr2)),
                    ]
                    with m.If(in_is_mwr & in_fits & ~hdr.dw0.ep):
                        m.next = "Write"
                    with m.Elif(in_is_mrd & in_fits):
                        m.d.comb += self.i_tlp.ready.eq(1)
                        m.d.sync += cpl_status.eq(CplStatus.SC)
                        m.next = "Read"
                    with m.Else():
                        # Refused: count it, drain any payload, answer non-posted requests.
                        m.d.comb += self.err_bad_req.eq(1)
                        m.d.sync += cpl_status.eq(Mux(in_is_mrd & (beat.bar == 0), CplStatus.CA, CplStatus.UR))
                        with m.If(in_has_data):
                            m.next = "Drain"
                        with m.Else():
                            m.d.comb += self.i_tlp.ready.eq(1)
                            m.next = "Complete"

            with m.State("Write"):
                last = idx == length - 1
                be = Mux(idx == 0, first_be, Mux(last, last_be, 0xF))
                lane = idx[:lane_bits] if lane_bits else Const(0)
                with m.If(self.i_tlp.valid):
                    m.d.comb += [
                        bus.addr.eq(dw_addr + idx),
                        bus.w_stb.eq(be != 0),
                        bus.w_be.eq(be),
                        bus.w_data.eq(beat.data.word_select(lane, 32)),
                    ]
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(last):
                        m.d.comb += self.i_tlp.ready.eq(1)
                        with m.If(beat.eop):
                            m.next = "Idle"
                        with m.Else():  # more payload than the length says: drop it
                            m.next = "Drain"
                    with m.Elif(lane == BDW - 1):
                        m.d.comb += self.i_tlp.ready.eq(1)

            with m.State("Read"):
                # A zero-length read (one DWORD, no byte enabled) touches no register.
                zero_len = (length == 1) & (first_be == 0)
                with m.If(idx != length):
                    m.d.comb += [bus.addr.eq(dw_addr + idx), bus.r_stb.eq(~zero_len)]
                    m.d.sync += [idx.eq(idx + 1), cap.eq(idx), cap_valid.eq(~zero_len)]
                    with m.If(zero_len):
                        m.d.sync += rbuf[:32].eq(0)
                with m.Else():
                    m.d.sync += [cap_valid.eq(0), settle.eq(0)]
                    m.next = "ReadLast"

            with m.State("ReadLast"):
                # The last DWORD is captured READ_LATENCY - 1 cycles after this one's start.
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == READ_LATENCY - 1):
                    m.next = "Complete"

            with m.State("Drain"):
                m.d.comb += self.i_tlp.ready.eq(1)
                with m.If(self.i_tlp.valid & beat.eop):
                    m.next = "Complete"

            with m.State("Complete"):
                posted = (fmt_type == FMT_TYPE_MWR32) | (fmt_type == FMT_TYPE_MWR64) | (fmt_type[3:5] == 0b10)
                with m.If(posted):
                    m.next = "Idle"
                with m.Else():
                    nbeats = Mux(with_data, (length + BDW - 1) >> lane_bits, 1)
                    remaining = (length << 2) - beat_no * WB
                    m.d.comb += [
                        self.o_tlp.valid.eq(1),
                        o.data.eq(rbuf.word_select(beat_no, W) if rbuf_dws > BDW else rbuf),
                        o.nbytes.eq(Mux(with_data, Mux(remaining > WB, WB, remaining), 0)),
                        o.sop.eq(beat_no == 0),
                        o.eop.eq(beat_no == nbeats - 1),
                    ]
                    with m.If(self.o_tlp.ready):
                        m.d.sync += beat_no.eq(beat_no + 1)
                        with m.If(beat_no == nbeats - 1):
                            m.next = "Idle"
        return m
