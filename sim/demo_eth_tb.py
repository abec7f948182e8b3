"""The main job's second simulation (run by ``python -m sim.demo``): two NICs
joined by a link exchange frames that their hosts post and receive through
descriptor rings, with every frame's bytes checked, and a pcap of the wire.
Writes what happened to ``PTLNIC_DEMO_OUT`` as JSON."""

import json
import os
import time

import cocotb

from .pcie import LinkKnobs
from .testbench import PairTestbench
from .traffic import Flow


@cocotb.test()
async def demo_two_nics(dut):
    t0 = time.perf_counter()
    latency = int(os.environ.get("PTLNIC_DEMO_LATENCY", "100"))
    tb = PairTestbench(dut, {n: LinkKnobs(read_latency=latency) for n in ("a", "b")},
                       capture=os.environ.get("PTLNIC_DEMO_PCAP"))
    await tb.start()
    # A -> B on queue 1, B waits by interrupt (at most one per 16 completions or
    # per 2000 cycles); B -> A on queue 2, A polls.
    ab = await Flow(tb, tb.a, tb.b, queue=1, cq=(0, 1), seed=1).setup(irq=True, mod_count=16, mod_time=2000)
    ba = await Flow(tb, tb.b, tb.a, queue=2, cq=(2, 3), seed=2).setup()
    out = {"read_latency": latency, "steps": []}
    for name, flow, size, n, pieces, irq in (("A -> B", ab, 1518, 200, 3, True),
                                             ("B -> A", ba, 64, 400, 1, False),
                                             ("A -> B", ab, 9216, 16, 2, True)):
        irqs = tb.b.transport.irq_count(0)
        r = await flow.run(size, n, pieces=pieces, irq=irq)
        lat = await flow.latency(size)
        out["steps"].append({"dir": name, "size": size, "frames": n, "pieces": pieces,
                             "wait": "interrupt" if irq else "poll", "cycles": r.cycles,
                             "frames_per_cycle": r.frames_per_cycle, "latency": lat,
                             "irqs": tb.b.transport.irq_count(0) - irqs if irq else 0})
    out["counters"] = {n: await h.nic.counters() for n, h in tb.hosts.items()}
    out["protocol_errors"] = [e for h in tb.hosts.values() for e in h.dev.protocol_errors]
    out["wire_frames"] = len(tb.capture.frames) if tb.capture else 0
    out["sim_cycles"] = tb.cycle()
    out["wall_s"] = time.perf_counter() - t0
    with open(os.environ["PTLNIC_DEMO_OUT"], "w") as f:
        json.dump(out, f, indent=1)
    await tb.check_protocol()
