"""The main job's simulation (run by ``python -m sim.demo``): enumerate the NIC,
move data by DMA and write what happened to ``PTLNIC_DEMO_OUT`` as JSON."""

import json
import os
import random
import time

import cocotb

from .pcie import LinkKnobs
from .testbench import NicTestbench

SIZES = (64, 1024, 4096, 65536)


@cocotb.test()
async def demo(dut):
    out = {"steps": []}
    t0 = time.perf_counter()
    tb = NicTestbench(dut, LinkKnobs(read_latency=int(os.environ.get("PTLNIC_DEMO_LATENCY", "100"))))
    nic = await tb.start()
    t = tb.transport
    out["device"] = {"id": str(t.dev.pcie_id), "vendor": t.dev.vendor_id, "device": t.dev.device_id,
                     "bar0": t.bar.get_absolute_address(0), "msi_vectors": t.nvec,
                     "mps": tb.dev.mps, "mrrs": tb.dev.mrrs, "read_latency": tb.knobs.read_latency}
    out["build"] = nic.build
    await nic.write("SCRATCH", 0x600D_CAFE)
    out["scratch_ok"] = await nic.read("SCRATCH") == 0x600D_CAFE

    rng = random.Random(int(os.environ.get("PTLNIC_SEED", "1")))
    for size in SIZES:
        data = rng.randbytes(size)
        rd, wr = await nic.dma_self_test(size, data=data, src_offset=size % 7, dst_offset=size % 5, irq=True)
        out["steps"].append({"kind": "single", "bytes": size, "read_cycles": rd.cycles, "write_cycles": wr.cycles,
                             "ok": True})
    # Runs of back-to-back operations: the latency is hidden behind the traffic.
    src = t.alloc_dma(1 << 20)
    for size in (4096, 65536):
        count = max(4, (1 << 20) // size // 4)
        rd = await nic.dma_run(write=False, host_addr=src.addr, length=size, count=count, stride=size, irq=True)
        wr = await nic.dma_run(write=True, host_addr=src.addr, length=size, count=count, stride=size, irq=True)
        out["steps"].append({"kind": "run", "bytes": size, "count": count, "read_cycles": rd.cycles,
                             "write_cycles": wr.cycles, "ok": rd.ok and wr.ok})
    out["counters"] = await nic.counters()
    out["protocol_errors"] = tb.dev.protocol_errors
    out["msi_received"] = sum(t.irq_count(v) for v in range(t.nvec))
    out["sim_cycles"] = tb.cycle()
    out["wall_s"] = time.perf_counter() - t0
    with open(os.environ["PTLNIC_DEMO_OUT"], "w") as f:
        json.dump(out, f, indent=1)
    await tb.check_protocol()
    assert all(s["ok"] for s in out["steps"])
