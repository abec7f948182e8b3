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
    t = tb.transport
    buf = t.alloc_dma(1 << 20)
    results = []
    for latency in LATENCIES:
        tb.knobs.read_latency = latency
        for write in (False, True):
            for size in SIZES:
                count = max(16, -(-target // size))
                stride = size if size * count <= buf.size else 0
                await nic.write("DMA_TEST_HOST_ADDR", buf.addr)
                await nic.write("DMA_TEST_LEN", size)
                await nic.write("DMA_TEST_COUNT", count)
                await nic.write("DMA_TEST_STRIDE", stride)
                irqs = t.irq_count(0)
                await nic.write_fields("DMA_TEST_CTRL", START=1, WRITE=int(write), IRQ=1)
                # The simulator's speed is taken while the run's traffic flows:
                # from START to the interrupt that ends the run.
                c0, t0 = tb.cycle(), time.perf_counter()
                while t.irq_count(0) == irqs:
                    assert await t.wait_irq(0, 1_000_000_000), "the run never ended"
                wall, cycles = time.perf_counter() - t0, tb.cycle() - c0
                status = await nic.read_fields("DMA_TEST_STATUS")
                done = await nic.read("DMA_TEST_DONE")
                assert not status["ERROR"] and done == count, (status, done)
                nic_cycles = await nic.read("DMA_TEST_CYCLES")
                results.append({"latency": latency, "dir": "write" if write else "read", "size": size,
                                "count": count, "bytes": size * count, "cycles": nic_cycles,
                                "sim_cycles": cycles, "wall_s": wall})
                dut._log.info("latency %d %s %d x %d B: %d cycles, %.2f B/cycle; %.0f sim cycles/s", latency,
                              "write" if write else "read", count, size, nic_cycles, size * count / nic_cycles,
                              cycles / wall)
    await tb.check_protocol()
    with open(os.environ["PTLNIC_BENCH_OUT"], "w") as f:
        json.dump({"config": tb.config.as_dict(), "mps": tb.dev.mps, "mrrs": tb.dev.mrrs, "results": results}, f,
                  indent=1)
