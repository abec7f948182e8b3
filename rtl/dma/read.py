# Ref: PCI Express Base Specification 4.0, §2.2.7 (memory read requests),
# §2.3.1.1 (completion splitting: Byte Count, Lower Address, RCB), §2.4.1
# (completions of different requests may pass each other), §2.8 (completion
# timeout), §7.5.3.4 (Max_Read_Request_Size).
"""DMA read engine: host memory to a packed byte stream."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..pcie.be import request_bes
from ..pcie.cfg import PcieCfgSignature
from ..lib.flags import FlagBits
from ..lib.ram import block_memory, sync_read
from ..lib.stream import BufferedFifo
from ..pcie.tlp import CplStatus, TlpStream, mem_request_header, tlp_beat_layout
from ..regmap import DmaStatus
from .layouts import LEN_BITS, STATUS_BITS, read_data_layout, read_req_layout

__all__ = ["DmaReadEngine", "ReadStatsSignature", "rotate_left_bytes"]


class ReadStatsSignature(wiring.Signature):
    """Counter pulses of the read engine (one count per cycle high)."""

    NAMES = ("ops", "tlps", "cpls", "ur", "ca", "timeout", "bad_tag", "bad_len", "bus_master", "zero_len",
             "poisoned")

    def __init__(self):
        super().__init__({n: Out(1) for n in self.NAMES})


def rotate_left_bytes(value, amount, nbytes, lane_bits=8):
    """Rotate ``value`` (``nbytes`` lanes of ``lane_bits``) left by ``amount`` lanes."""
    x = value
    for k in range(len(amount)):
        step = (1 << k) % nbytes
        if step:
            x = Mux(amount[k], x.rotate_left(step * lane_bits), x)
    return x


class DmaReadEngine(wiring.Component):
    """Reads host memory by DMA and hands the bytes over in request order.

    Each request is cut into MemRd TLPs at ``max_read_request_size`` boundaries
    (which includes every 4 KiB boundary); each gets a tag and buffer space.
    Completions may arrive split at any DWORD boundary and interleaved across
    tags; each is written straight to its place in a reorder buffer of byte
    lanes, so no completion ever waits for another. Tags retire in issue order
    and the buffer is read out as a packed stream.

    A completion with UR or CA status, one with the wrong length, byte count or
    lower address, and a tag whose completions do not arrive within ``timeout``
    cycles end the request with that :class:`~rtl.regmap.DmaStatus`; its data
    bytes are then undefined but still delivered, so the stream stays framed. A
    poisoned completion (EP set) is accounted for like a good one but its data
    is not written: the request ends with ``POISONED``. A completion whose tag
    is not outstanding is dropped. Every case is counted.

    req     In(stream(read_req_layout))
    resp    Out(stream(read_data_layout))
    o_tlp   Out(TlpStream): MemRd requests
    i_cpl   In(TlpStream): completions (always accepted)
    cfg     In(PcieCfgSignature)
    timeout In(24): completion timeout in cycles, 0 for none
    hold    In(1): issue no new MemRd (drain before reset)
    outstanding Out(1): some tag is waiting for completions
    busy    Out(1): some request is not fully delivered
    stats   Out(ReadStatsSignature)
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "req": In(stream.Signature(read_req_layout())),
            "resp": Out(stream.Signature(read_data_layout(config.data_width))),
            "o_tlp": Out(TlpStream(config.data_width)),
            "i_cpl": In(TlpStream(config.data_width)),
            "cfg": In(PcieCfgSignature()),
            "timeout": In(24),
            "hold": In(1),
            "outstanding": Out(1),
            "busy": Out(1),
            "stats": Out(ReadStatsSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, WB = cfg.data_width, cfg.beat_bytes
        LB = WB.bit_length() - 1                     # log2(beat bytes)
        BUF = cfg.dma_read_buffer
        PB = BUF.bit_length()                        # buffer positions, one extra bit for wrap
        ROWS = BUF // WB
        NT = cfg.dma_tags
        TB = max(1, NT.bit_length() - 1)             # tag index bits
        MRRS = cfg.max_read_request_size
        st = self.stats

        def align_up(x):
            return ((x + WB - 1) & ~(WB - 1))[:PB]

        # ---------------------------------------------------------------- state
        issued = Signal(TB + 1)
        retired = Signal(TB + 1)
        tail = Signal(PB)      # next free buffer position
        head = Signal(PB)      # next position to read out (always beat-aligned)
        rd_limit = Signal(PB)  # end of the retired bytes
        now = Signal(24)
        m.d.sync += now.eq(now + 1)

        # Per-tag state. What is fixed when the tag is issued (buffer place,
        # length, next lower address, issue time, end of group) is a memory
        # written by the issue side; what its completions change (bytes still
        # to come, next lower address) a memory written by the completion
        # side, which reads the issue side's values instead while the tag is
        # ``fresh`` (no completion seen yet). Done and error are flip-flops:
        # several places set them, the scanner and retirement look at them.
        info_l = data.StructLayout({"base": PB, "len": 13, "nla": 7, "last": 1, "time": 24})
        prog_l = data.StructLayout({"rem": 13, "nla": 7})
        m.submodules.t_info = t_info = block_memory(shape=info_l, depth=NT)
        m.submodules.t_prog = t_prog = Memory(shape=prog_l, depth=NT, init=[])
        info_wp = t_info.write_port()
        prog_wp = t_prog.write_port()
        fresh = FlagBits("t_fresh", NT)
        t_done = FlagBits("t_done", NT)
        t_err = Array(Signal(STATUS_BITS, name=f"t_err{i}") for i in range(NT))

        # Per-request records for the read-out side, and statuses from retirement.
        op_fifo = m.submodules.op_fifo = fifo.SyncFIFOBuffered(width=LEN_BITS + STATUS_BITS, depth=NT)
        st_fifo = m.submodules.st_fifo = fifo.SyncFIFOBuffered(width=STATUS_BITS, depth=NT)

        # --------------------------------------------------------- issue side
        act = Signal()
        cur_addr = Signal(64)
        cur_rem = Signal(LEN_BITS)
        cur_more = Signal()
        g_len = Signal(LEN_BITS)    # bytes of the group's requests accepted so far

        req = self.req.payload
        with m.If(~act & op_fifo.w_rdy):
            m.d.comb += self.req.ready.eq(1)
        with m.If(self.req.valid & self.req.ready):
            total = (g_len + req.len)[:LEN_BITS]
            with m.If(req.more):
                m.d.sync += g_len.eq(total)
            with m.Else():
                # The group is complete: the read-out side learns its length.
                m.d.sync += g_len.eq(0)
                m.d.comb += op_fifo.w_en.eq(1)
                with m.If(total == 0):
                    m.d.comb += [op_fifo.w_data.eq(Cat(Const(0, LEN_BITS), Const(DmaStatus.ZERO_LENGTH, STATUS_BITS))),
                                 st.zero_len.eq(1)]
                with m.Else():
                    m.d.comb += op_fifo.w_data.eq(Cat(total, Const(0, STATUS_BITS)))
            # A request with bytes is cut into chunks; so is an empty request that
            # ends a group with bytes (one empty chunk, to carry the group's end).
            with m.If((req.len != 0) | (~req.more & (g_len != 0))):
                m.d.sync += [act.eq(1), cur_addr.eq(req.addr), cur_rem.eq(req.len), cur_more.eq(req.more)]
                m.d.comb += st.bus_master.eq(~self.cfg.bus_master & (req.len != 0))

        # Cut the next chunk one cycle ahead, into registers, so that the issue
        # logic (and the arbiter behind it) sees only flip-flops.
        mrrs = Signal(13)
        m.d.sync += mrrs.eq(Mux((Const(128, 13) << self.cfg.mrrs) > MRRS, MRRS, Const(128, 13) << self.cfg.mrrs))
        to_boundary = Signal(13)
        m.d.comb += to_boundary.eq(mrrs - (cur_addr[:13] & (mrrs - 1)))
        clen = Signal(13)
        m.d.comb += clen.eq(Mux(cur_rem < to_boundary, cur_rem, to_boundary))
        c_dws, c_fbe, c_lbe = request_bes(m, cur_addr[:2], clen, 13)
        nx_valid = Signal()
        nx_addr = Signal(64)
        nx_len = Signal(13)
        nx_end = Signal()       # last chunk of its group
        nx_dws = Signal(11)
        nx_fbe = Signal(4)
        nx_lbe = Signal(4)

        used = Signal(PB)
        m.d.comb += used.eq(tail - head)
        space_ok = (used + nx_len) <= BUF
        tag_ok = (issued - retired)[:TB + 1] != NT
        tag = issued[:TB]
        can_issue = nx_valid & space_ok & tag_ok & ~self.hold
        # Without bus mastering a chunk fails without a TLP; an empty chunk needs none.
        via_link = self.cfg.bus_master & (nx_len != 0)
        fails = ~self.cfg.bus_master & (nx_len != 0)

        o = self.o_tlp.payload
        h = o.hdr.req
        m.d.comb += mem_request_header(h, addr=nx_addr, dws=nx_dws, first_be=nx_fbe, last_be=nx_lbe, tag=tag,
                                       requester_id=self.cfg.requester_id, write=False)
        m.d.comb += [
            o.sop.eq(1),
            o.eop.eq(1),
            self.o_tlp.valid.eq(can_issue & via_link),
        ]
        issue = Signal()
        m.d.comb += issue.eq(can_issue & (self.o_tlp.ready | ~via_link))
        m.d.comb += [info_wp.addr.eq(tag), info_wp.en.eq(issue), info_wp.data.base.eq(tail),
                     info_wp.data.len.eq(nx_len), info_wp.data.nla.eq(nx_addr[:7]), info_wp.data.time.eq(now),
                     info_wp.data.last.eq(nx_end)]
        fresh.set(issue, tag)
        t_done.set(issue & ~via_link, tag)
        with m.If(issue):
            m.d.sync += [
                t_err[tag].eq(Mux(fails, DmaStatus.BUS_MASTER, DmaStatus.OK)),
                tail.eq(tail + nx_len), nx_valid.eq(0),
                issued.eq(issued + 1),
            ]
            with m.If(nx_end):
                # Every group starts on a beat boundary of the buffer, so that its
                # bytes come out from lane 0 on; within a group they follow on.
                m.d.sync += tail.eq(align_up(tail + nx_len))
        with m.If(act & (~nx_valid | issue)):
            m.d.sync += [
                nx_valid.eq(1), nx_addr.eq(cur_addr), nx_len.eq(clen),
                nx_end.eq((clen == cur_rem) & ~cur_more),
                nx_dws.eq(c_dws), nx_fbe.eq(c_fbe), nx_lbe.eq(c_lbe),
                cur_addr.eq(cur_addr + clen), cur_rem.eq(cur_rem - clen),
            ]
            with m.If(clen == cur_rem):
                m.d.sync += act.eq(0)
        m.d.comb += st.tlps.eq(issue & via_link)

        # ---------------------------------------------------- completion side
        # A beat is taken into stage A while its tag's entries are read; stage
        # B checks the header and places the bytes.
        m.d.comb += self.i_cpl.ready.eq(1)
        a_valid = Signal()
        a_beat = Signal(tlp_beat_layout(W))
        m.d.sync += [a_valid.eq(self.i_cpl.valid), a_beat.eq(self.i_cpl.payload)]
        in_tag = self.i_cpl.payload.hdr.cpl.dw2.tag[:TB]
        c_info = sync_read(m, t_info, in_tag, name="c_info")
        # The tag issued last cycle: its entry was written as it was read,
        # so what was read is not its (the scanner and retirement wait).
        last_issue = Signal()
        last_tag = Signal(TB)
        m.d.sync += [last_issue.eq(issue), last_tag.eq(tag)]
        c_prog_rd = t_prog.read_port(transparent_for=(prog_wp,))
        m.d.comb += c_prog_rd.addr.eq(in_tag)
        beat = a_beat
        ch = beat.hdr.cpl
        fire = a_valid

        c_tag = ch.dw2.tag
        c_t = c_tag[:TB]
        tag_in_range = (c_tag >> TB) == 0 if NT < 256 else Const(1)
        c_bc = Mux(ch.dw1.byte_count == 0, 4096, ch.dw1.byte_count)
        c_la = ch.dw2.lower_address
        c_dws = Mux(ch.dw0.length == 0, 1024, ch.dw0.length)
        c_has_data = ch.dw0.fmt[1]
        c_data_bytes = Signal(13)
        m.d.comb += c_data_bytes.eq((c_dws << 2) - c_la[:2])
        R = Signal(13)
        c_base = Signal(PB)
        c_len = Signal(13)
        c_nla = Signal(7)
        c_done = Signal()
        is_fresh = fresh.bit(c_t)
        m.d.comb += [R.eq(Mux(is_fresh, c_info.len, c_prog_rd.data.rem)),
                     c_base.eq(c_info.base), c_len.eq(c_info.len),
                     c_nla.eq(Mux(is_fresh, c_info.nla, c_prog_rd.data.nla)), c_done.eq(t_done.bit(c_t))]
        # A tag issued in the cycle its entry was read (only a stray completion
        # can come that early) is not taken as live: the entry read is not its.
        live = (tag_in_range & ~c_done & ((c_t - retired[:TB])[:TB] < (issued - retired)[:TB + 1])
                & ~(last_issue & (last_tag == c_t)))
        status_ok = ch.dw1.status == CplStatus.SC
        final = c_data_bytes >= c_bc
        length_ok = (c_has_data & (c_bc == R) & (c_la == c_nla) & (c_data_bytes != 0)
                     & (~final | ((c_data_bytes - c_bc) < 4)))
        poisoned = ch.dw0.ep
        good = Signal()
        m.d.comb += good.eq(live & status_ok & length_ok & ~poisoned)
        nb = Signal(13)
        m.d.comb += nb.eq(Mux(final, c_bc, c_data_bytes))
        pos0 = Signal(PB)
        m.d.comb += pos0.eq(c_base + (c_len - R) - c_la[:2])

        # Where each beat's bytes go: taken from the header on the first beat of a
        # completion, and carried in ``x`` for the beats that follow.
        ctx = data.StructLayout({"drop": 1, "pos": PB, "lo": LB + 1, "hi": 14, "fin": 1, "tag": TB})
        x = Signal(ctx)
        x_active = Signal()
        b = Signal(ctx)
        with m.If(beat.sop):
            m.d.comb += [b.drop.eq(~good), b.pos.eq(pos0), b.lo.eq(c_la[:2]), b.hi.eq(c_la[:2] + nb),
                         b.fin.eq(final), b.tag.eq(c_t)]
        with m.Else():
            m.d.comb += b.eq(x)

        header = fire & beat.sop
        ok_header = header & live & status_ok & length_ok
        m.d.comb += [prog_wp.addr.eq(c_t), prog_wp.en.eq(ok_header),
                     prog_wp.data.rem.eq(R - nb), prog_wp.data.nla.eq(c_la + nb)]
        fresh.clear(ok_header, c_t)
        t_done.set(header & live & (~status_ok | ~length_ok | (poisoned & final)), c_t)
        with m.If(fire):
            m.d.sync += [
                x.eq(b), x.pos.eq(b.pos + WB), x.lo.eq(0), x.hi.eq(Mux(b.hi > WB, b.hi - WB, 0)),
                x_active.eq(~beat.eop & ~b.drop),
            ]
            with m.If(beat.sop):
                m.d.comb += st.cpls.eq(1)
                with m.If(~live):
                    m.d.comb += st.bad_tag.eq(1)
                with m.Elif(~status_ok):
                    m.d.comb += [st.ur.eq(ch.dw1.status == CplStatus.UR),
                                 st.ca.eq(ch.dw1.status != CplStatus.UR)]
                    m.d.sync += t_err[c_t].eq(Mux(ch.dw1.status == CplStatus.UR, DmaStatus.UR, DmaStatus.CA))
                with m.Elif(~length_ok):
                    m.d.comb += st.bad_len.eq(1)
                    m.d.sync += t_err[c_t].eq(DmaStatus.BAD_CPL)
                with m.Elif(poisoned):
                    # Its bytes are dropped; the request fails. The final
                    # completion's data never reaches stage 2, so the tag is
                    # marked done here.
                    m.d.comb += st.poisoned.eq(1)
                    m.d.sync += t_err[c_t].eq(DmaStatus.POISONED)

        # Stage 2: rotate the beat into place and write the byte lanes.
        s_valid = Signal()
        s_data = Signal(W)
        s_pos = Signal(PB)
        s_lo = Signal(LB + 1)
        s_hi = Signal(LB + 1)
        s_eop = Signal()
        s_fin = Signal()
        s_tag = Signal(TB)
        m.d.sync += [
            s_valid.eq(fire & ~b.drop), s_data.eq(beat.data), s_pos.eq(b.pos), s_lo.eq(b.lo),
            s_hi.eq(Mux(b.hi > WB, WB, b.hi)), s_eop.eq(beat.eop), s_fin.eq(b.fin), s_tag.eq(b.tag),
        ]
        t_done.set(s_valid & s_eop & s_fin, s_tag)

        rot = s_pos[:LB] if LB else Const(0, 1)
        row0 = s_pos[LB:PB - 1]
        lane_mask = Signal(WB)
        m.d.comb += lane_mask.eq(Cat(*[(j >= s_lo) & (j < s_hi) for j in range(WB)]))
        r_data = Signal(W)
        r_mask = Signal(WB)
        m.d.comb += [r_data.eq(rotate_left_bytes(s_data, rot, WB)),
                     r_mask.eq(rotate_left_bytes(lane_mask, rot, WB, lane_bits=1))]

        # -------------------------------------------------------------- timeout
        # One tag a cycle, in steps with a register between each: its issue
        # time is read; registered; its age compared with the timeout; then
        # the tag is looked at (unless one of its completions is on its way
        # through, or it was issued again since its time was read: in the
        # last three cycles).
        scan_next = Signal(TB)
        scan_t, scan_a, scan = Signal(TB), Signal(TB), Signal(TB)
        m.d.sync += [scan_next.eq(scan_next + 1), scan_t.eq(scan_next), scan_a.eq(scan_t), scan.eq(scan_a)]
        s_info = sync_read(m, t_info, scan_next, name="s_info")
        s_time = Signal(24)
        s_late = Signal()
        m.d.sync += [s_time.eq(s_info.time), s_late.eq((now - s_time)[:24] >= self.timeout)]
        issued_2 = Signal()
        issued_3 = Signal()
        tag_2 = Signal(TB)
        tag_3 = Signal(TB)
        m.d.sync += [issued_2.eq(last_issue), tag_2.eq(last_tag), issued_3.eq(issued_2), tag_3.eq(tag_2)]
        reissued = ((last_issue & (last_tag == scan)) | (issued_2 & (tag_2 == scan))
                    | (issued_3 & (tag_3 == scan)))
        in_tag_full = self.i_cpl.payload.hdr.cpl.dw2.tag
        scan_busy = ((x_active & (x.tag == scan)) | (fire & beat.sop & (c_t == scan))
                     | (self.i_cpl.valid & self.i_cpl.payload.sop & (in_tag_full[:TB] == scan))
                     | (s_valid & (s_tag == scan)))
        scan_live = (scan - retired[:TB])[:TB] < (issued - retired)[:TB + 1]
        scan_done = t_done.bit(scan)
        expired = (self.timeout != 0) & scan_live & ~scan_done & ~scan_busy & ~reissued & s_late
        m.d.comb += st.timeout.eq(expired)
        t_done.set(expired, scan)
        with m.If(expired):
            m.d.sync += t_err[scan].eq(DmaStatus.TIMEOUT)

        # ----------------------------------------------------------- retirement
        # The tag to retire next has its entry read a cycle ahead.
        rt = retired[:TB]
        r_addr = Signal(TB)
        r_info = sync_read(m, t_info, r_addr, name="r_info")
        r_end = Signal(PB)
        r_err = Signal(STATUS_BITS)
        r_last = Signal()
        r_done = Signal()
        m.d.comb += [r_end.eq(r_info.base + r_info.len), r_err.eq(t_err[rt]),
                     r_last.eq(r_info.last), r_done.eq(t_done.bit(rt) & ~(last_issue & (last_tag == rt)))]
        op_err = Signal(STATUS_BITS)
        this_err = Mux(op_err != 0, op_err, r_err)
        can_retire = (issued != retired) & r_done & (~r_last | st_fifo.w_rdy)
        m.d.comb += r_addr.eq(Mux(can_retire, rt + 1, rt))
        t_done.clear(can_retire, rt)
        with m.If(can_retire):
            m.d.sync += [rd_limit.eq(r_end), retired.eq(retired + 1)]
            with m.If(r_last):
                m.d.sync += rd_limit.eq(align_up(r_end))
                m.d.comb += [st_fifo.w_en.eq(1), st_fifo.w_data.eq(this_err)]
                m.d.sync += op_err.eq(0)
            with m.Else():
                m.d.sync += op_err.eq(this_err)

        # -------------------------------------------------------------- read-out
        lanes = []
        for lane in range(WB):
            mem = Memory(shape=8, depth=ROWS, init=[])
            m.submodules[f"lane{lane}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            lanes.append(rp)
            m.d.comb += [
                wp.addr.eq(row0 + (lane < rot)),
                wp.data.eq(r_data[8 * lane:8 * lane + 8]),
                wp.en.eq(s_valid & r_mask[lane]),
                rp.addr.eq(head[LB:PB - 1]),
            ]

        out_fifo = m.submodules.out_fifo = BufferedFifo(
            width=len(self.resp.payload.as_value()), depth=4)
        started = Signal()
        ro_rem = Signal(LEN_BITS)
        op_len = op_fifo.r_data[:LEN_BITS]
        op_status = op_fifo.r_data[LEN_BITS:]
        cur = Mux(started, ro_rem, op_len)
        refused = op_len == 0
        is_last = cur <= WB
        beat_bytes = Mux(is_last, cur, WB)[:LB + 1]
        avail = Signal(PB)
        m.d.comb += avail.eq(rd_limit - head)
        p_valid = Signal()
        p_refused = Signal()
        p_meta = Signal(read_data_layout(W))
        credit = (out_fifo.level + p_valid) < out_fifo.depth
        go = op_fifo.r_rdy & credit & (refused | ((avail >= beat_bytes) & (~is_last | st_fifo.r_rdy)))
        m.d.sync += p_valid.eq(go)
        with m.If(go):
            m.d.sync += [p_refused.eq(refused), p_meta.nbytes.eq(Mux(refused, 0, beat_bytes)),
                         p_meta.last.eq(is_last | refused),
                         p_meta.status.eq(Mux(refused, op_status, st_fifo.r_data))]
            with m.If(refused):
                m.d.comb += op_fifo.r_en.eq(1)
            with m.Else():
                m.d.sync += head.eq(head + WB)
                with m.If(is_last):
                    m.d.comb += [op_fifo.r_en.eq(1), st_fifo.r_en.eq(1), st.ops.eq(1)]
                    m.d.sync += started.eq(0)
                with m.Else():
                    m.d.sync += [started.eq(1), ro_rem.eq(cur - WB)]
        out = Signal(read_data_layout(W))
        m.d.comb += [
            out.data.eq(Mux(p_refused, 0, Cat(*[rp.data for rp in lanes]))),
            out.nbytes.eq(p_meta.nbytes), out.last.eq(p_meta.last), out.status.eq(p_meta.status),
            out_fifo.w_en.eq(p_valid), out_fifo.w_data.eq(out),
            self.resp.valid.eq(out_fifo.r_rdy), self.resp.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.resp.ready),
        ]

        for flags in (fresh, t_done):
            flags.apply(m)
        m.d.comb += [
            self.outstanding.eq(issued != retired),
            self.busy.eq(act | nx_valid | (issued != retired) | op_fifo.r_rdy | p_valid | out_fifo.r_rdy),
        ]
        return m
