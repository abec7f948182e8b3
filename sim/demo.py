"""The main job: simulate the NIC doing real work and print a summary.

    python -m sim.demo [--width 64|128|256] [--latency CYCLES]
"""

import argparse
import json
import sys
import time

from rtl.config import NicConfig
from .build import BUILD
from .run import SimFailure, run_cocotb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--width", type=int, default=NicConfig().data_width, help="datapath width in bits")
    ap.add_argument("--latency", type=int, default=100, help="host memory read latency in cycles")
    args = ap.parse_args(argv)
    config = NicConfig(data_width=args.width)
    out = BUILD / "demo" / f"demo-{config.key()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    print(f"ptlnic demo: a {config.data_width}-bit NIC ({config.beat_bytes} bytes per cycle) behind a simulated "
          f"PCIe root complex\nsimulation log: {log}")
    t0 = time.monotonic()
    try:
        run_cocotb("sim.demo_tb", config, name=f"demo-{config.key()}", log_file=log,
                   env={"PTLNIC_DEMO_OUT": str(out), "PTLNIC_DEMO_LATENCY": str(args.latency)})
    except SimFailure as exc:
        print(f"demo FAILED: {exc}\nsee {log}", file=sys.stderr)
        return 1
    r = json.loads(out.read_text())
    d = r["device"]
    bb = config.beat_bytes
    print(f"\nfound {d['vendor']:04x}:{d['device']:04x} at {d['id']}, BAR0 at {d['bar0']:#x}, "
          f"{d['msi_vectors']} MSI vectors; MPS {d['mps']} B, MRRS {d['mrrs']} B; "
          f"host read latency {d['read_latency']} cycles")
    print(f"scratch register write/read: {'ok' if r['scratch_ok'] else 'WRONG'}")
    print("\nDMA host -> NIC memory -> host, data compared byte for byte "
          "(cycles counted by the NIC from start to last completion):")
    print(f"  {'transfer':>20} {'read cycles':>12} {'read B/cyc':>11} {'write cycles':>13} {'write B/cyc':>12}  data")
    for s in r["steps"]:
        total = s["bytes"] * s.get("count", 1)
        what = f"{s['bytes']} B" if s["kind"] == "single" else f"{s['count']} x {s['bytes']} B"
        print(f"  {what:>20} {s['read_cycles']:>12} {total / s['read_cycles']:>11.2f} {s['write_cycles']:>13} "
              f"{total / s['write_cycles']:>12.2f}  {'ok' if s['ok'] else 'MISMATCH'}")
    print(f"  (datapath limit: {bb} B/cycle)")
    c = r["counters"]
    errors = {k: v for k, v in c.items() if k.startswith("ERR_") and v}
    print(f"\nNIC counters: {c['DMA_RD_OPS']} DMA reads in {c['DMA_RD_TLPS']} MemRd TLPs "
          f"({c['DMA_RD_CPLS']} completions), {c['DMA_WR_OPS']} DMA writes in {c['DMA_WR_TLPS']} MemWr TLPs, "
          f"{c['MSI_SENT']} MSIs sent ({r['msi_received']} received); errors: {errors or 'none'}")
    print(f"PCIe protocol violations seen by the model: {len(r['protocol_errors']) or 'none'}")
    print(f"simulated {r['sim_cycles']} cycles in {r['wall_s']:.1f} s "
          f"({r['sim_cycles'] / r['wall_s']:.0f} cycles/s); total run {time.monotonic() - t0:.0f} s")
    ok = r["scratch_ok"] and all(s["ok"] for s in r["steps"]) and not errors and not r["protocol_errors"]
    print("\nresult:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
