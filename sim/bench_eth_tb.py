"""The Ethernet benchmark's simulation (run by ``python -m sim.bench``): NIC A's
host sends frames from one transmit queue to one receive queue of NIC B's.

For each frame size, ``sim.traffic.Flow`` posts a receive buffer per frame and
all the frames with a single doorbell; the throughput is the steady rate at
which B's receive completions reach B's host memory over the middle of the
run, host to host, every frame's bytes checked. The latency is
that of one frame on an idle pair, doorbell to receive completion. Results go
to ``PTLNIC_BENCH_OUT`` as JSON."""

import json
import os
import time

import cocotb

from .pcie import LinkKnobs
from .testbench import PairTestbench
from .traffic import Flow

#: Frame sizes on the wire, FCS included (the host posts 4 bytes less).
SIZES = tuple(int(x) for x in os.environ.get("PTLNIC_BENCH_SIZES", "64,128,256,512,1024,1518,4096,9216").split(","))


@cocotb.test()
async def eth_throughput_and_latency(dut):
    latency = int(os.environ.get("PTLNIC_BENCH_LATENCY", "0"))
    target = int(os.environ.get("PTLNIC_BENCH_BYTES", str(256 * 1024)))
    tb = PairTestbench(dut, {n: LinkKnobs(read_latency=latency) for n in ("a", "b")})
    await tb.start()
    flow = await Flow(tb, tb.a, tb.b).setup()
    # Simulation speed with nothing happening: the clock runs, no Python on it.
    idle = int(os.environ.get("PTLNIC_BENCH_IDLE", "200000"))
    t0 = time.perf_counter()
    await tb.wait_cycles(idle)
    idle_speed = idle / (time.perf_counter() - t0)
    dut._log.info("idle: %d cycles at %.0f cycles/s", idle, idle_speed)
    results = []
    for size in SIZES:
        n = max(32, min(2048, target // size))
        t0 = time.perf_counter()
        r = await flow.run(size, n, poll_every=1024)
        wall = time.perf_counter() - t0
        if os.environ.get("PTLNIC_BENCH_SPACING"):
            dut._log.info("completion spacing: %s", flow.spacing)
        lat = await flow.latency(size)
        results.append({"size": size, "frames": n, "steady_frames": r.steady_frames, "cycles": r.cycles,
                        "latency": lat,
                        "sim_cycles": r.sim_cycles, "wall_s": wall})
        dut._log.info("%5d B: %d frames in %d cycles, latency %d cycles", size, n, r.cycles, lat)

    await tb.check_protocol()
    out = os.environ.get("PTLNIC_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({"read_latency": latency, "mps": tb.a.dev.mps, "mrrs": tb.a.dev.mrrs, "results": results,
                       "idle_cycles_per_s": round(idle_speed)}, f, indent=1)
