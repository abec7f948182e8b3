"""Unit tests of the Ethernet MAC and the DMA multiplexers in Amaranth's own
simulator (no Verilator): frames against zlib's CRC-32, the pacing against the
wire rate, every receive error, and group-at-a-time sharing of the DMA engines."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib.wiring import connect
from amaranth.sim import Simulator

from cocotb_tests.blocksim import simulate
from rtl.dma.mux import DmaReadMux, DmaWriteMux
from rtl.lib.arbiter import lowest_set, round_robin
from rtl.eth.classify import RxClassifier
from rtl.eth.mac import MIN_FRAME, WIRE_OVERHEAD, MacRx, MacTx, RxError
from rtl.queues.rx import rx_meta_layout
from sim.wire import eth_fcs

WIDTHS = (64, 256)
MAX_FRAME = 1518


def _drive_frames(ctx, port, frames, wb, rng=None, gaps=0.0):
    """Send frames on a bytes stream, one beat per cycle within a frame (as
    MacTx's contract asks), with random idle cycles between frames when
    ``gaps``."""
    async def run():
        for f in frames:
            for off in range(0, len(f), wb):
                while off == 0 and rng and rng.random() < gaps:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                ctx.set(port.payload.data, int.from_bytes(f[off:off + wb], "little"))
                ctx.set(port.payload.nbytes, min(wb, len(f) - off))
                ctx.set(port.payload.last, off + wb >= len(f))
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
    return run()


@pytest.mark.parametrize("width", WIDTHS)
def test_mac_pads_appends_fcs_checks_and_steers(width, seed):
    """MacTx -> MacRx back to back: the wire carries the padded frame and its
    FCS, the receiver gives back the frame, its length and its queue."""
    wb = width // 8
    rng = random.Random(seed)
    m = Module()
    m.submodules.tx = tx = MacTx(width)
    m.submodules.rx = rx = MacRx(width, 3, MAX_FRAME)
    connect(m, tx.o_wire, rx.i_wire)
    sizes = [1, 14, 59, 60, 61, 64, 100, wb - 1, wb, wb + 1, 300, MAX_FRAME - 4]
    frames = [bytes(rng.randrange(256) for _ in range(rng.choice(sizes))) for _ in range(60)]
    wire, got = [], []

    async def src(ctx):
        await _drive_frames(ctx, tx.i_frame, frames, wb, rng, gaps=0.2)

    async def sink(ctx):
        cur, wcur = bytearray(), bytearray()
        for _ in range(200_000):
            _, _, v, p, wv, wp = await ctx.tick().sample(rx.o_frame.valid, rx.o_frame.payload,
                                                         tx.o_wire.valid, tx.o_wire.payload)
            if wv:
                wcur += wp.data.to_bytes(wb, "little")[:wp.nbytes]
                if wp.last:
                    wire.append(bytes(wcur))
                    wcur = bytearray()
            if v:
                cur += p.data.to_bytes(wb, "little")[:p.nbytes]
                if p.last:
                    got.append((bytes(cur), p.error, p.length, p.queue))
                    cur = bytearray()
                    if len(got) == len(frames):
                        return
        raise AssertionError(f"only {len(got)} of {len(frames)} frames came through")

    simulate(m, sink, src)
    assert len(wire) == len(got) == len(frames), (len(wire), len(got), len(frames))
    for f, w, (g, err, length, q) in zip(frames, wire, got, strict=True):
        body = f + bytes(max(0, MIN_FRAME - 4 - len(f)))
        assert w == body + eth_fcs(body), f"{len(f)}-byte frame on the wire"
        assert (err, g, length, q) == (RxError.OK, body, len(body), body[5] & 7), f"{len(f)}-byte frame received"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("size", [60, 61, 124, 1514])
def test_mac_tx_keeps_to_the_wire_rate(width, size):
    """Back-to-back frames leave at the wire rate (frame, FCS, preamble and gap
    at data_width / 8 bytes per cycle) and never faster, in any window; a frame
    shorter on the wire than its beats takes its beats."""
    wb = width // 8
    n = 40
    m = Module()
    m.submodules.tx = tx = MacTx(width)
    starts = []
    fed = []

    async def src(ctx):
        await _drive_frames(ctx, tx.i_frame, [bytes(size)] * n, wb)
        fed.append(True)

    async def sink(ctx):
        ctx.set(tx.o_wire.ready, 1)
        cycle, first = 0, True
        while len(starts) < n:
            _, _, v, p = await ctx.tick().sample(tx.o_wire.valid, tx.o_wire.payload)
            cycle += 1
            if v and first:
                starts.append(cycle)
            if v:
                first = bool(p.last)
        # The feeder's last beats go in after the last frame has started:
        # end the simulation only once it is done (not inside its wait).
        while not fed:
            await ctx.tick()

    simulate(m, sink, src)
    # Cycles per frame: the wire rate, or the frame's beats when more (every
    # frame starts in lane 0, so a frame just over a beat multiple costs a beat).
    per_frame = max((size + 4 + WIRE_OVERHEAD) / wb, -(-(size + 4) // wb))
    span = starts[-1] - starts[0]
    assert abs(span - (n - 1) * per_frame) <= 1, f"{n} frames took {span} cycles, wire rate {per_frame:.2f}/frame"
    for i in range(n):
        for j in range(i + 1, n):
            # j - i frames in (starts[j] - starts[i]) cycles, with at most a beat of slack
            assert starts[j] - starts[i] >= (j - i) * per_frame - 1, (i, j, starts[j] - starts[i])


@pytest.mark.parametrize("width", WIDTHS)
def test_mac_rx_flags_bad_fcs_runts_and_oversize(width, seed):
    wb = width // 8
    rng = random.Random(seed)
    m = Module()
    m.submodules.rx = rx = MacRx(width, 3, MAX_FRAME)

    def good(n):
        body = bytes(rng.randrange(256) for _ in range(n - 4))
        return body + eth_fcs(body)

    def bad_fcs(n):
        f = bytearray(good(n))
        f[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(f)

    # Every length of a short last beat, for good and bad frames.
    tails = [64 + k for k in range(wb)]
    cases = []
    for _ in range(80):
        kind = rng.choice(["ok", "fcs", "runt", "oversize"])
        if kind == "ok":
            cases.append((good(rng.choice(tails + [64 + wb * 3, MAX_FRAME])), RxError.OK))
        elif kind == "fcs":
            cases.append((bad_fcs(rng.choice(tails + [200, MAX_FRAME])), RxError.BAD_FCS))
        elif kind == "runt":
            cases.append((good(rng.choice([5, 17, 63])), RxError.RUNT))   # good FCS, too short
        else:
            cases.append((good(rng.choice([MAX_FRAME + 1, MAX_FRAME + wb, 2000])), RxError.OVERSIZE))
    got = []

    async def src(ctx):
        await _drive_frames(ctx, rx.i_wire, [f for f, _ in cases], wb, rng, gaps=0.1)

    async def sink(ctx):
        for _ in range(100_000):
            _, _, v, p = await ctx.tick().sample(rx.o_frame.valid, rx.o_frame.payload)
            if v and p.last:
                got.append(RxError(p.error))
                if len(got) == len(cases):
                    return
        raise AssertionError(f"only {len(got)} of {len(cases)} frames came out")

    simulate(m, sink, src)
    assert got == [e for _, e in cases], [(i, len(f), e, g) for i, ((f, e), g) in enumerate(zip(cases, got)) if e != g]


def _rr_rule(v, g, n):
    """Round robin in plain Python: the first set bit of ``v`` after ``g``, wrapping."""
    return next((g + k) % n for k in range(1, n + 1) if v >> ((g + k) % n) & 1)


@pytest.mark.parametrize("n", [2, 3, 8, 16])
def test_round_robin_picks_the_first_request_after_the_last_grant(n):
    """Every request vector and last grant, against the rule in plain Python."""
    m = Module()
    valids, last = Signal(n), Signal(range(n))
    pick = round_robin(m, n, valids, last)
    wrong = []

    async def check(ctx):
        for v in range(1, 1 << n) if n <= 8 else [1, 3, 0x8000, 0x8001, 0x5555, 0xAAAA, 0xFFFF, 0x0F0F]:
            for g in range(n):
                ctx.set(valids, v)
                ctx.set(last, g)
                want = _rr_rule(v, g, n)
                if ctx.get(pick) != want:
                    wrong.append((v, g, ctx.get(pick), want))

    sim = Simulator(m)
    sim.add_testbench(check)
    sim.run()
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("n", [1, 2, 5, 13, 64, 512])
def test_lowest_set_bit_tree_at_every_size(n, seed):
    """The priority encoder under every pick (a tree of two-way choices):
    random vectors, single bits at every position and none, against the rule
    in plain Python; with round robin on top at the same size."""
    rng = random.Random(seed)
    m = Module()
    vec, last = Signal(n), Signal(range(max(n, 2)))
    low = lowest_set(m, vec)
    pick = round_robin(m, n, vec, last)
    vectors = [0] + [1 << k for k in range(n)] + [rng.getrandbits(n) & rng.getrandbits(n) for _ in range(200)]
    wrong = []

    async def check(ctx):
        for v in vectors:
            g = rng.randrange(n)
            ctx.set(vec, v)
            ctx.set(last, g)
            want = next((k for k in range(n) if v >> k & 1), 0)
            if ctx.get(low) != want:
                wrong.append(("lowest", v, ctx.get(low), want))
            if v:
                want = _rr_rule(v, g, n)
                if ctx.get(pick) != want:
                    wrong.append(("round robin", v, g, ctx.get(pick), want))

    sim = Simulator(m)
    sim.add_testbench(check)
    sim.run()
    assert not wrong, f"{wrong[:5]} (seed {seed})"


def test_read_mux_grants_whole_groups_and_routes_responses_in_order(seed):
    """Three clients post groups of reads at random; the engine side sees each
    group's requests together, and each response group goes back to its owner."""
    rng = random.Random(seed)
    n, W = 3, 64
    m = Module()
    m.submodules.mux = mux = DmaReadMux(W, n)
    groups = {k: [[(k << 24 | g << 8 | r, rng.randint(1, 64)) for r in range(rng.randint(1, 4))]
                  for g in range(12)] for k in range(n)}
    engine_seen = []
    received = {k: [] for k in range(n)}

    def client(k):
        async def run(ctx):
            port = mux.clients()[k].req
            for grp in groups[k]:
                for i, (addr, length) in enumerate(grp):
                    while rng.random() < 0.3:
                        ctx.set(port.valid, 0)
                        await ctx.tick()
                    ctx.set(port.payload.addr, addr)
                    ctx.set(port.payload.len, length)
                    ctx.set(port.payload.more, i < len(grp) - 1)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        return run

    def client_rx(k):
        async def run(ctx):
            port = mux.clients()[k].data
            ctx.set(port.ready, 1)
            while True:
                _, _, v, p = await ctx.tick().sample(port.valid, port.payload)
                if v:
                    received[k].append((p.data, bool(p.last)))
        return run

    async def engine(ctx):
        req, data = mux.engine.req, mux.engine.data
        ctx.set(req.ready, 1)
        pending = []
        total = sum(len(g) for gs in groups.values() for g in gs)
        for _ in range(20_000):
            _, _, v, p = await ctx.tick().sample(req.valid, req.payload)
            if v:
                engine_seen.append((p.addr, p.len, p.more))
                if not p.more:
                    pending.append(p.addr)
            if len(engine_seen) == total and not pending:
                return
            # answer one group per cycle with one beat: the group's last address
            if pending and rng.random() < 0.5:
                ctx.set(req.ready, 0)
                ctx.set(data.payload.data, pending[0])
                ctx.set(data.payload.last, 1)
                ctx.set(data.payload.nbytes, 8)
                ctx.set(data.valid, 1)
                await ctx.tick().until(data.ready)
                ctx.set(data.valid, 0)
                ctx.set(req.ready, 1)
                pending.pop(0)
        raise AssertionError("mux stalled")

    simulate(m, engine, *[f(k) for k in range(n) for f in (client, client_rx)])
    # Whole groups, each in its client's order.
    i = 0
    order = {k: 0 for k in range(n)}
    while i < len(engine_seen):
        k = engine_seen[i][0] >> 24
        grp = groups[k][order[k]]
        assert [(a, ln) for a, ln, _ in engine_seen[i:i + len(grp)]] == grp, f"group of client {k} split"
        order[k] += 1
        i += len(grp)
    assert all(order[k] == len(groups[k]) for k in range(n))
    for k in range(n):
        assert [d for d, _ in received[k]] == [g[-1][0] for g in groups[k]], f"client {k} got others' data"


def test_write_mux_keeps_each_groups_data_with_its_requests(seed):
    """Two clients write groups; the engine sees requests and data beats of one
    group at a time and the responses go back to the right client."""
    rng = random.Random(seed)
    n, W = 2, 64
    m = Module()
    m.submodules.mux = mux = DmaWriteMux(W, n)
    groups = {k: [[rng.randint(1, 3) for _ in range(rng.randint(1, 3))] for _ in range(10)] for k in range(n)}
    seen_req, seen_data = [], []
    resps = {k: [] for k in range(n)}

    def tag(addr):
        """The status the engine answers a request with: its own, so that a
        response given to the wrong client or out of order shows."""
        return (addr >> 24) * 7 + (addr >> 8) * 3 + addr & 0xF

    def client(k):
        async def req_run(ctx):
            port = mux.clients()[k].req
            for g, grp in enumerate(groups[k]):
                for i, beats in enumerate(grp):
                    ctx.set(port.payload.addr, k << 24 | g << 8 | i)
                    ctx.set(port.payload.len, 8 * beats)
                    ctx.set(port.payload.more, i < len(grp) - 1)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)
                    while rng.random() < 0.3:
                        await ctx.tick()
            ctx.set(port.valid, 0)

        async def data_run(ctx):
            port = mux.clients()[k].data
            for g, grp in enumerate(groups[k]):
                total = sum(grp)
                for b in range(total):
                    ctx.set(port.payload.data, k << 24 | g << 8 | b)
                    ctx.set(port.payload.nbytes, 8)
                    ctx.set(port.payload.last, b == total - 1)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)
                    while rng.random() < 0.3:
                        await ctx.tick()

        async def resp_run(ctx):
            port = mux.clients()[k].resp
            ctx.set(port.ready, 1)
            while True:
                _, _, v, p = await ctx.tick().sample(port.valid, port.payload)
                if v:
                    resps[k].append(p.status)
        return req_run, data_run, resp_run

    async def engine(ctx):
        req, data, resp = mux.engine.req, mux.engine.data, mux.engine.resp
        ctx.set(req.ready, 1)
        ctx.set(data.ready, 1)
        total_req = sum(len(g) for gs in groups.values() for g in gs)
        total_beats = sum(sum(g) for gs in groups.values() for g in gs)
        answered = 0
        for _ in range(20_000):
            owed = answered < len(seen_req)
            ctx.set(resp.valid, owed)
            if owed:
                ctx.set(resp.payload.status, tag(seen_req[answered]))
            _, _, rv, rp, dv, dp, sv, sr = await ctx.tick().sample(req.valid, req.payload, data.valid, data.payload,
                                                                   resp.valid, resp.ready)
            if sv and sr:
                answered += 1
            if rv:
                seen_req.append(rp.addr)
            if dv:
                seen_data.append(dp.data)
            if len(seen_req) == total_req and len(seen_data) == total_beats and answered == total_req:
                ctx.set(resp.valid, 0)
                return
        raise AssertionError("mux stalled")

    simulate(m, engine, *[fn for k in range(n) for fn in client(k)])
    # Data beats come group by group in the order the groups' requests were granted.
    granted = []
    for a in seen_req:
        key = a >> 8
        if not granted or granted[-1] != key:
            granted.append(key)
    expect = [key << 8 | b for key in granted for b in range(sum(groups[key >> 16][key & 0xFF]))]
    assert seen_data == expect
    # Each client got one response per request, its own, in its request order.
    for k in range(n):
        mine = [k << 24 | g << 8 | i for g, grp in enumerate(groups[k]) for i in range(len(grp))]
        assert resps[k] == [tag(a) for a in mine], f"client {k}: responses {resps[k]}"


def test_classifier_routes_each_frame_with_its_record_under_back_pressure(seed):
    """Records and frames enter separately, with idle cycles; both outputs
    stall at random, and the queue side takes a record only once its frame
    has begun (as the receive planner does). Every frame leaves whole, on the
    side its record chose, in order per side, with its record."""
    rng = random.Random(seed)
    W, wb = 64, 8
    m = Module()
    m.submodules.cl = cl = RxClassifier(W, rx_meta_layout(8), depth=4)
    frames = []
    for k in range(60):
        et = rng.choice((0x0800, 0x88B5, 0x88B6))
        frames.append((k, et, bytes([k]) * rng.randint(1, 40)))
    got = {"o": [], "e": []}
    metas = {"o": [], "e": []}

    async def records(ctx):
        ctx.set(cl.match, 0x88B6)
        for k, et, body in frames:
            while rng.random() < 0.3:
                ctx.set(cl.i_meta.valid, 0)
                await ctx.tick()
            ctx.set(cl.i_meta.payload.ethertype, et)
            ctx.set(cl.i_meta.payload.length, len(body))
            ctx.set(cl.i_meta.payload.queue, k % 8)
            ctx.set(cl.i_meta.valid, 1)
            await ctx.tick().until(cl.i_meta.ready)
        ctx.set(cl.i_meta.valid, 0)

    async def beats(ctx):
        await _drive_frames(ctx, cl.i_frame, [body for _, _, body in frames], wb, rng, gaps=0.3)

    async def sink(ctx):
        cur = {"o": bytearray(), "e": bytearray()}
        for _ in range(20_000):
            ports = []
            for side in ("o", "e"):
                fr, me = getattr(cl, f"{side}_frame"), getattr(cl, f"{side}_meta")
                ctx.set(fr.ready, int(rng.random() < 0.6))
                # The queue side takes a record only once its frame has begun to
                # flow, as the receive planner does (its DMA writes need the data).
                begun = len(got[side]) + bool(cur[side]) > len(metas[side]) or side == "e"
                ctx.set(me.ready, int(rng.random() < 0.6 and begun))
                ports += [fr.valid, fr.ready, fr.payload, me.valid, me.ready, me.payload]
            _, _, *v = await ctx.tick().sample(*ports)
            snap = {"o": (v[0] and v[1], v[2], v[3] and v[4], v[5]),
                    "e": (v[6] and v[7], v[8], v[9] and v[10], v[11])}
            for side, (f_fire, fp, m_fire, mp) in snap.items():
                if m_fire:
                    metas[side].append((mp.queue, mp.ethertype, mp.length))
                if f_fire:
                    cur[side] += fp.data.to_bytes(wb, "little")[:fp.nbytes]
                    if fp.last:
                        got[side].append(bytes(cur[side]))
                        cur[side] = bytearray()
            if len(got["o"]) + len(got["e"]) == len(metas["o"]) + len(metas["e"]) == len(frames):
                return
        raise AssertionError(f"only {len(got['o']) + len(got['e'])} of {len(frames)} frames came out")

    simulate(m, sink, records, beats)
    for side, want_engine in (("o", False), ("e", True)):
        mine = [(k, et, body) for k, et, body in frames if (et == 0x88B6) == want_engine]
        assert got[side] == [body for _, _, body in mine], f"side {side}: frames differ"
        assert metas[side] == [(k % 8, et, len(body)) for k, et, body in mine], f"side {side}: records differ"
