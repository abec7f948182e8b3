"""DMA self-test client: moves data between host memory and on-chip NIC memory.

Driven by the ``DMA_TEST_*`` registers. A run issues ``count`` operations of
``len`` bytes back to back, the host address advancing by ``stride`` each time,
all to or from the same NIC memory offset; it measures the cycles from START to
the end of the last operation, so that runs of many operations measure the
engines' throughput with the completion latency hidden.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..lib.stream import BufferedFifo
from ..regmap import DmaStatus
from .layouts import LEN_BITS, STATUS_BITS, read_data_layout, read_req_layout, \
    write_data_layout, write_req_layout, write_resp_layout

__all__ = ["DmaTestClient"]


class DmaTestClient(wiring.Component):
    """
    start       In(1): pulse; ignored while a run is in progress
    write       In(1): direction of the run, sampled at start (0: host to NIC)
    irq_en      In(1): pulse ``irq`` at the end of the run, sampled at start
    host_addr, nic_addr, length, count, stride: In, the run's parameters
    busy, error, first_error, cycles, done, errors: Out, the run's status
    irq         Out(1): one-cycle pulse at the end of a run that asked for it
    rd_req/rd_data, wr_req/wr_data/wr_resp: DMA engine client ports
    """

    def __init__(self, config):
        self._config = config
        W = config.data_width
        super().__init__({
            "start": In(1), "write": In(1), "irq_en": In(1),
            "host_addr": In(64), "nic_addr": In(32), "length": In(32), "count": In(32), "stride": In(32),
            "busy": Out(1), "error": Out(1), "first_error": Out(STATUS_BITS),
            "cycles": Out(32), "done": Out(32), "errors": Out(32), "irq": Out(1),
            "rd_req": Out(stream.Signature(read_req_layout())),
            "rd_data": In(stream.Signature(read_data_layout(W))),
            "wr_req": Out(stream.Signature(write_req_layout())),
            "wr_data": Out(stream.Signature(write_data_layout(W))),
            "wr_resp": In(stream.Signature(write_resp_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, WB = cfg.data_width, cfg.beat_bytes
        LB = WB.bit_length() - 1
        ROWS = cfg.dma_test_mem // WB
        RB = (ROWS - 1).bit_length()

        mem = m.submodules.mem = Memory(shape=W, depth=ROWS, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()

        # Run parameters, latched at START.
        dir_wr = Signal()
        irq_en = Signal()
        length = Signal(LEN_BITS)
        count = Signal(32)
        stride = Signal(32)
        row0 = Signal(RB)
        nbeats = Signal(LEN_BITS - LB + 1)
        m.d.comb += nbeats.eq((length + WB - 1) >> LB)

        issued = Signal(32)
        req_addr = Signal(64)

        m.d.comb += self.irq.eq(0)
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        args_ok = ((self.nic_addr[:LB] == 0) & (self.length >> LEN_BITS == 0) & (self.count != 0)
                   & ((self.nic_addr + self.length) <= cfg.dma_test_mem))
        with m.If(self.start & ~self.busy):
            m.d.sync += [
                dir_wr.eq(self.write), irq_en.eq(self.irq_en), length.eq(self.length),
                count.eq(self.count), stride.eq(self.stride), row0.eq(self.nic_addr[LB:]),
                req_addr.eq(self.host_addr), issued.eq(0),
                self.cycles.eq(0), self.done.eq(0), self.errors.eq(0),
            ]
            with m.If(args_ok):
                m.d.sync += [self.busy.eq(1), self.error.eq(0), self.first_error.eq(0)]
            with m.Else():
                m.d.sync += [self.error.eq(1), self.first_error.eq(DmaStatus.BAD_ARGS)]
                m.d.comb += self.irq.eq(self.irq_en)

        # Issue the operations.
        more = self.busy & (issued != count)
        for port, want in ((self.rd_req, ~dir_wr), (self.wr_req, dir_wr)):
            m.d.comb += [port.valid.eq(more & want), port.payload.addr.eq(req_addr),
                         port.payload.len.eq(length)]
            with m.If(port.valid & port.ready):
                m.d.sync += [issued.eq(issued + 1), req_addr.eq(req_addr + stride)]

        # Record the end of each operation.
        op_end = Signal()
        op_status = Signal(STATUS_BITS)
        with m.If(op_end):
            m.d.sync += self.done.eq(self.done + 1)
            with m.If(op_status != DmaStatus.OK):
                m.d.sync += self.errors.eq(self.errors + 1)
                with m.If(~self.error):
                    m.d.sync += [self.error.eq(1), self.first_error.eq(op_status)]
            with m.If(self.done + 1 == count):
                m.d.sync += self.busy.eq(0)
                m.d.comb += self.irq.eq(irq_en)

        # Host to NIC: the read stream lands in NIC memory.
        rd_beat = Signal(LEN_BITS - LB + 1)
        rd = self.rd_data.payload
        m.d.comb += self.rd_data.ready.eq(1)
        with m.If(self.rd_data.valid):
            m.d.comb += [
                wp.addr.eq(row0 + rd_beat),
                wp.data.eq(rd.data),
                wp.en.eq(Cat(*[j < rd.nbytes for j in range(WB)])),
            ]
            m.d.sync += rd_beat.eq(Mux(rd.last, 0, rd_beat + 1))
            m.d.comb += [op_end.eq(rd.last), op_status.eq(rd.status)]

        # NIC to host: NIC memory streams into the write engine, one group per
        # operation (an empty operation still sends its one empty last beat).
        src_ops = Signal(32)     # operations whose data is still to be sent
        src_beat = Signal(LEN_BITS - LB + 1)
        with m.If(self.start & ~self.busy & args_ok & self.write):
            m.d.sync += [src_ops.eq(self.count), src_beat.eq(0)]
        wd = data.StructLayout({"data": W, "nbytes": LB + 1, "last": 1})
        data_fifo = m.submodules.data_fifo = BufferedFifo(width=wd.size, depth=4)
        p_valid = Signal()
        p_meta = Signal(wd)
        credit = (data_fifo.level + p_valid) < data_fifo.depth
        go = (src_ops != 0) & credit
        beats = Mux(nbeats == 0, 1, nbeats)
        final = src_beat == beats - 1
        m.d.comb += rp.addr.eq(row0 + src_beat)
        m.d.sync += p_valid.eq(go)
        with m.If(go):
            left = length - (src_beat << LB)
            m.d.sync += [p_meta.nbytes.eq(Mux(left > WB, WB, left)), p_meta.last.eq(final)]
            with m.If(final):
                m.d.sync += [src_beat.eq(0), src_ops.eq(src_ops - 1)]
            with m.Else():
                m.d.sync += src_beat.eq(src_beat + 1)
        out = Signal(wd)
        m.d.comb += [
            out.data.eq(rp.data), out.nbytes.eq(p_meta.nbytes), out.last.eq(p_meta.last),
            data_fifo.w_en.eq(p_valid), data_fifo.w_data.eq(out),
            self.wr_data.valid.eq(data_fifo.r_rdy), self.wr_data.payload.eq(data_fifo.r_data),
            data_fifo.r_en.eq(self.wr_data.ready),
            self.wr_resp.ready.eq(1),
        ]
        with m.If(self.wr_resp.valid):
            m.d.comb += [op_end.eq(1), op_status.eq(self.wr_resp.payload.status)]
        return m
