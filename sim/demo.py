"""The main job: simulate the NIC doing real work and print a summary.

Part 1: one NIC behind a simulated PCIe root complex moves data by DMA.
Part 2: two NICs joined by a link exchange frames that their hosts post and
receive through descriptor rings (zero copy, doorbells, completions,
interrupts); the wire traffic is written to a pcap file.

    python -m sim.demo [--width 64|128|256] [--latency CYCLES]
"""

import argparse
import json
import sys
import time

from rtl.config import NicConfig
from rtl.eth.mac import WIRE_OVERHEAD
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
          f"({r['sim_cycles'] / r['wall_s']:.0f} cycles/s)")
    ok = r["scratch_ok"] and all(s["ok"] for s in r["steps"]) and not errors and not r["protocol_errors"]
    ok &= two_nics(config, args.latency)
    print(f"\ntotal run {time.monotonic() - t0:.0f} s")
    print("\nresult:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def two_nics(config, latency):
    out = BUILD / "demo" / f"demo-eth-{config.key()}.json"
    pcap = out.with_suffix(".pcap")
    log = out.with_suffix(".log")
    print(f"\n--- two NICs joined by a link; simulation log: {log}")
    try:
        run_cocotb("sim.demo_eth_tb", config, top="ptlnic_pair", name=f"demo-eth-{config.key()}", log_file=log,
                   env={"PTLNIC_DEMO_OUT": str(out), "PTLNIC_DEMO_LATENCY": str(latency),
                        "PTLNIC_DEMO_PCAP": str(pcap)})
    except SimFailure as exc:
        print(f"two-NIC demo FAILED: {exc}\nsee {log}", file=sys.stderr)
        return False
    r = json.loads(out.read_text())
    bb = config.beat_bytes
    print(f"frames posted by one host, received into the other's buffers by DMA, every byte compared; "
          f"host read latency {r['read_latency']} cycles")
    print(f"  {'direction':>9} {'frame':>6} {'frames':>7} {'buffers':>8} {'wait':>10} {'frames/cyc':>11} "
          f"{'B/cyc':>7} {'of wire':>8} {'latency':>8}")
    for s in r["steps"]:
        fpc = s["frames_per_cycle"]
        limit = bb / (s["size"] + WIRE_OVERHEAD)
        wait = f"{s['irqs']} irqs" if s["wait"] == "interrupt" else "poll"
        print(f"  {s['dir']:>9} {s['size']:>5}B {s['frames']:>7} {s['pieces']:>8} {wait:>10} {fpc:>11.4f} "
              f"{fpc * s['size']:>7.2f} {100 * fpc / limit:>7.1f}% {s['latency']:>8}")
    print(f"  (throughput: steady rate at which receive completions reach host memory; wire limit: frame + "
          f"{WIRE_OVERHEAD} B of preamble and gap at {bb} B/cycle; latency: cycles from the doorbell reaching "
          f"the sender to the receive completion leaving the receiver, one frame on an idle link)")
    for n, c in r["counters"].items():
        drops = {k: v for k, v in c.items() if k.startswith(("RX_DROP", "DESC_ERR", "QUEUE_FAULTS", "TX_TOO"))
                 and v}
        print(f"NIC {n.upper()}: {c['TX_FRAMES']} frames sent, {c['RX_FRAMES']} received, {c['CQ_IRQS']} "
              f"completion interrupts; drops and errors: {drops or 'none'}")
    print(f"wire capture: {r['wire_frames']} frames in {pcap} (opens in Wireshark)")
    print(f"PCIe protocol violations seen by the models: {len(r['protocol_errors']) or 'none'}")
    print(f"simulated {r['sim_cycles']} cycles of two NICs in {r['wall_s']:.1f} s "
          f"({r['sim_cycles'] / r['wall_s']:.0f} cycles/s)")
    bad = any(v for c in r["counters"].values() for k, v in c.items()
              if k.startswith(("RX_DROP", "DESC_ERR", "QUEUE_FAULTS", "TX_TOO", "ERR_")))
    return not bad and not r["protocol_errors"]


if __name__ == "__main__":
    sys.exit(main())
