"""The DMA benchmark's simulation (run by ``python -m sim.bench``).

For each host read latency, direction and transfer size it runs enough
back-to-back operations to move at least ``PTLNIC_BENCH_BYTES`` bytes, and
records the NIC's own cycle count for the run and the wall time the simulator
took for it. Results go to ``PTLNIC_BENCH_OUT`` as JSON."""

import json
import os
import time

import cocotb

from .pcie import LinkKnobs
from .testbench import NicTestbench

SIZES = (64, 256, 1024, 4096, 16384, 65536)
LATENCIES = (0, 250)


@cocotb.test()
async def dma_throughput(dut):
    tb = NicTestbench(dut, LinkKnobs())
    nic = await tb.start()
    target = int(os.environ.get("PTLNIC_BENCH_BYTES", str(256 * 1024)))
    buf = tb.transport.alloc_dma(1 << 20)
    results = []
    for latency in LATENCIES:
        tb.knobs.read_latency = latency
        for write in (False, True):
            for size in SIZES:
                count = max(16, -(-target // size))
                stride = size if size * count <= buf.size else 0
                c0, t0 = tb.cycle(), time.perf_counter()
                run = await nic.dma_run(write=write, host_addr=buf.addr, length=size, count=count, stride=stride,
                                        irq=True, timeout_ns=1_000_000_000)
                wall, cycles = time.perf_counter() - t0, tb.cycle() - c0
                assert run.ok, run
                results.append({"latency": latency, "dir": "write" if write else "read", "size": size,
                                "count": count, "bytes": size * count, "cycles": run.cycles,
                                "sim_cycles": cycles, "wall_s": wall})
                dut._log.info("latency %d %s %d x %d B: %d cycles, %.2f B/cycle; %.0f sim cycles/s", latency,
                              "write" if write else "read", count, size, run.cycles, size * count / run.cycles,
                              cycles / wall)
    tb.check_protocol()
    with open(os.environ["PTLNIC_BENCH_OUT"], "w") as f:
        json.dump({"config": tb.config.as_dict(), "mps": tb.dev.mps, "mrrs": tb.dev.mrrs, "results": results}, f,
                  indent=1)
