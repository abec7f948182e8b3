"""Sharing the DMA engines between clients.

Both multiplexers grant one client a whole *group* of requests at a time (the
requests up to one with ``more`` clear), round robin, and remember the order
of the grants to send the responses back to their clients: responses leave the
engines in request order.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..lib.arbiter import PacketGrant
from .layouts import read_data_layout, read_req_layout, write_data_layout, write_req_layout, write_resp_layout

__all__ = ["DmaReadMux", "DmaWriteMux", "DmaReadClient", "DmaWriteClient"]


class DmaReadClient(wiring.Signature):
    """A read client's port, client side: ``req`` out, ``data`` in."""

    def __init__(self, data_width):
        super().__init__({
            "req": Out(stream.Signature(read_req_layout())),
            "data": In(stream.Signature(read_data_layout(data_width))),
        })


class DmaWriteClient(wiring.Signature):
    """A write client's port, client side: ``req`` and ``data`` out, ``resp`` in."""

    def __init__(self, data_width):
        super().__init__({
            "req": Out(stream.Signature(write_req_layout())),
            "data": Out(stream.Signature(write_data_layout(data_width))),
            "resp": In(stream.Signature(write_resp_layout())),
        })


class DmaReadMux(wiring.Component):
    """``n`` read clients onto one :class:`~rtl.dma.read.DmaReadEngine`.

    clients__<k>  In(DmaReadClient)
    engine        Out(DmaReadClient): to the engine's ``req`` and ``resp``
    """

    def __init__(self, data_width, n, depth=32):
        self._n = n
        self._depth = depth
        members = {f"clients__{k}": In(DmaReadClient(data_width)) for k in range(n)}
        members["engine"] = Out(DmaReadClient(data_width))
        super().__init__(members)

    def clients(self):
        return [getattr(self, f"clients__{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        n = self._n
        cl = self.clients()
        reqs = [c.req for c in cl]
        order = m.submodules.order = fifo.SyncFIFOBuffered(width=max(1, (n - 1).bit_length()), depth=self._depth)

        g = PacketGrant(m, n, [r.valid for r in reqs])
        eng = self.engine.req
        for k, r in enumerate(reqs):
            with m.If(g.sel == k):
                m.d.comb += [eng.valid.eq(r.valid & order.w_rdy), eng.payload.eq(r.payload),
                             r.ready.eq(eng.ready & order.w_rdy)]
        fire = eng.valid & eng.ready
        g.update(m, fire, ~eng.payload.more)
        with m.If(fire & ~eng.payload.more):
            m.d.comb += [order.w_en.eq(1), order.w_data.eq(g.sel)]

        # Each group's bytes go back to the client that asked for them.
        resp = self.engine.data
        for k, c in enumerate(cl):
            with m.If(order.r_rdy & (order.r_data == k)):
                m.d.comb += [c.data.valid.eq(resp.valid), c.data.payload.eq(resp.payload),
                             resp.ready.eq(c.data.ready)]
        with m.If(resp.valid & resp.ready & resp.payload.last):
            m.d.comb += order.r_en.eq(1)
        return m


class DmaWriteMux(wiring.Component):
    """``n`` write clients onto one :class:`~rtl.dma.write.DmaWriteEngine`.

    A granted group's data beats are taken from its client, from the group's
    first request on, up to the beat marked ``last``; each request's status goes
    back to the client that made it.

    clients__<k>  In(DmaWriteClient)
    engine        Out(DmaWriteClient): to the engine's ``req``, ``data`` and ``resp``
    """

    def __init__(self, data_width, n, depth=32):
        self._n = n
        self._depth = depth
        members = {f"clients__{k}": In(DmaWriteClient(data_width)) for k in range(n)}
        members["engine"] = Out(DmaWriteClient(data_width))
        super().__init__(members)

    def clients(self):
        return [getattr(self, f"clients__{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        n = self._n
        cw = max(1, (n - 1).bit_length())
        cl = self.clients()
        reqs = [c.req for c in cl]
        groups = m.submodules.groups = fifo.SyncFIFOBuffered(width=cw, depth=self._depth)
        each = m.submodules.each = fifo.SyncFIFOBuffered(width=cw, depth=self._depth)

        g = PacketGrant(m, n, [r.valid for r in reqs])
        eng = self.engine.req
        room = groups.w_rdy & each.w_rdy
        for k, r in enumerate(reqs):
            with m.If(g.sel == k):
                m.d.comb += [eng.valid.eq(r.valid & room), eng.payload.eq(r.payload), r.ready.eq(eng.ready & room)]
        fire = eng.valid & eng.ready
        g.update(m, fire, ~eng.payload.more)
        with m.If(fire):
            m.d.comb += [each.w_en.eq(1), each.w_data.eq(g.sel)]
            with m.If(~g.locked):
                # The group's data may flow from its first request on: the
                # engine holds only a few requests' worth of chunks.
                m.d.comb += [groups.w_en.eq(1), groups.w_data.eq(g.sel)]

        data = self.engine.data
        for k, c in enumerate(cl):
            with m.If(groups.r_rdy & (groups.r_data == k)):
                m.d.comb += [data.valid.eq(c.data.valid), data.payload.eq(c.data.payload),
                             c.data.ready.eq(data.ready)]
        with m.If(data.valid & data.ready & data.payload.last):
            m.d.comb += groups.r_en.eq(1)

        resp = self.engine.resp
        for k, c in enumerate(cl):
            with m.If(each.r_rdy & (each.r_data == k)):
                m.d.comb += [c.resp.valid.eq(resp.valid), c.resp.payload.eq(resp.payload),
                             resp.ready.eq(c.resp.ready)]
        with m.If(resp.valid & resp.ready):
            m.d.comb += each.r_en.eq(1)
        return m
