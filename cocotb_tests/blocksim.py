"""Helpers for the block testbenches that run in Amaranth's simulator."""

from amaranth.sim import Simulator

__all__ = ["simulate", "sink", "source"]


def simulate(m, main, *background):
    """Run ``main`` against ``m`` (10 ns clock) to its end, with the
    ``background`` testbenches alongside."""
    sim = Simulator(m)
    sim.add_clock(1e-8)
    for proc in background:
        sim.add_testbench(proc, background=True)
    sim.add_testbench(main)
    sim.run()


async def sink(ctx, rng, stream, p_ready, take):
    """A stream's consumer, ready with probability ``p_ready`` each cycle;
    ``take(payload)`` for every transfer."""
    while True:
        ctx.set(stream.ready, int(rng.random() < p_ready))
        _, _, v, r, p = await ctx.tick().sample(stream.valid, stream.ready, stream.payload)
        if v and r:
            take(p)


async def source(ctx, rng, stream, payloads, p_idle):
    """A stream's producer: each of ``payloads`` (raw values) in turn, held
    until taken, with an idle cycle before it with probability ``p_idle``
    (repeatedly); valid falls after the last."""
    for v in payloads:
        while rng.random() < p_idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload.as_value(), v)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)
