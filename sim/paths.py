"""Estimated register-to-register paths of a synthesised netlist, before
placement: which paths will set the Fmax, in seconds instead of the half hour
that place and route takes.

    python -m sim.paths [build/synth/<config>/top.json] [--top 30] [--period 8]

It reads the flat yosys JSON that ``python -m sim.synth`` writes and walks
every combinational arc with a fixed delay per cell (routing included: a
LUT4 level is 1.3 ns, as ECP5 -6 designs routed here average) from each
flip-flop, block-RAM output and input to each flip-flop, memory input and
output. The figures are estimates for ranking paths (nextpnr's after
placement are the ones quoted as Fmax); the report lists the longest
endpoints with the named signals along their path, and the endpoints
grouped by the named signal that starts and ends them.
"""

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from .build import BUILD

__all__ = ["analyse", "main", "newest_synth_file"]

#: Delay of one combinational step through each cell kind, in ns, routing
#: to the next cell included. CCU2C carry-in to carry-out is a dedicated
#: path (no routing).
LUT = 1.3
DELAYS = {
    "LUT4": {"*": LUT},
    "PFUMX": {"*": 0.4},
    "L6MUX21": {"*": 0.4},
    "CCU2C": {("CIN", "COUT"): 0.1, ("CIN", "*"): 0.7, ("*", "COUT"): 1.0, "*": 1.5},
    "TRELLIS_DPR16X4": {("RAD", "DO"): 1.3},
}
#: Clock to output of the sequential cells (routing to the next cell included).
CLOCK_TO_OUT = {"TRELLIS_FF": 1.0, "DP16KD": 5.6, "TRELLIS_DPR16X4": None}
#: Inputs that end a path (set-up included as zero).
SEQ_INPUTS = {"TRELLIS_FF": None, "DP16KD": None, "TRELLIS_DPR16X4": ("DI", "WAD", "WRE")}


#: Names yosys derives from the cells it made (``x_TRELLIS_FF_Q_DI``...).
_DERIVED = re.compile(r"_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|DPR16X4)|\.\d+\.\d+_|_DO(_\d+)?$")


def _base(port):
    return re.sub(r"\d+$", "", port)


def _delay(kind, pin, pout):
    table = DELAYS[kind]
    for key in ((_base(pin), _base(pout)), (_base(pin), "*"), ("*", _base(pout)), "*"):
        if key in table:
            return table[key]
    return None


def analyse(netlist):
    """(endpoints, names, preds, cells, arrival): endpoints as (arrival ns,
    bit, sink name), net names by bit, each bit's worst predecessor bit, the
    cell driving each bit, and each bit's arrival in ns."""
    mod = netlist["modules"]["top"]
    names = {}
    for name, net in mod["netnames"].items():
        if net.get("hide_name") or _DERIVED.search(name):
            continue
        for i, bit in enumerate(net["bits"]):
            label = f"{name}[{i}]" if len(net["bits"]) > 1 else name
            if isinstance(bit, int) and (bit not in names or len(label) < len(names[bit])):
                names[bit] = label
    arrival, fanin, endpoints, cells = {}, defaultdict(list), [], {}
    for port in mod["ports"].values():
        if port["direction"] == "input":
            for bit in port["bits"]:
                arrival[bit] = 0.0
    for cname, cell in mod["cells"].items():
        kind, conns, dirs = cell["type"], cell["connections"], cell.get("port_directions", {})
        outs = [(p, b) for p, bits in conns.items() if dirs.get(p) == "output" for b in bits if isinstance(b, int)]
        ins = [(p, b) for p, bits in conns.items() if dirs.get(p) == "input" for b in bits if isinstance(b, int)]
        if kind in CLOCK_TO_OUT:
            t = CLOCK_TO_OUT[kind]
            if t is not None:
                for _, b in outs:
                    arrival[b] = t
            keep = SEQ_INPUTS[kind]
            sink = next((b for _, b in outs), None)
            for p, b in ins:
                if p != "CLK" and not p.startswith("CLK") and (keep is None or _base(p) in keep):
                    endpoints.append((b, sink if kind == "TRELLIS_FF" else cname))
        if kind in DELAYS:
            for pi, bi in ins:
                for po, bo in outs:
                    d = _delay(kind, pi, po)
                    if d is not None:
                        fanin[bo].append((bi, d))
                        cells[bo] = (kind, cname)
    for port in mod["ports"].values():
        if port["direction"] == "output":
            endpoints.extend((b, "output") for b in port["bits"] if isinstance(b, int))
    # Longest arrival by an iterative depth-first walk (chains run hundreds deep).
    preds = {}
    state = {}
    for root in list(fanin):
        if root in arrival and root not in fanin:
            continue
        stack = [root]
        while stack:
            b = stack[-1]
            if b in arrival and state.get(b) != 1:
                stack.pop()
                continue
            if state.get(b) != 1:
                state[b] = 1
                stack.extend(i for i, _ in fanin.get(b, ()) if i not in arrival and state.get(i) != 1)
                continue
            best, pred = 0.0, None
            for i, d in fanin.get(b, ()):
                t = arrival.get(i, 0.0) + d
                if t > best:
                    best, pred = t, i
            arrival[b], preds[b] = best, pred
            state[b] = 2
            stack.pop()
    ends = [(arrival.get(b, 0.0), b, names.get(c, f"net {c}") if isinstance(c, int) else c) for b, c in endpoints]
    return ends, names, preds, cells, arrival


def _steps(bit, names, preds, cells, arrival_of):
    """Every cell on the worst path into ``bit``, source first."""
    out = []
    while bit is not None:
        kind, cname = cells.get(bit, ("source", ""))
        out.append((arrival_of.get(bit, 0.0), kind, names.get(bit, cname)))
        bit = preds.get(bit)
    return out[::-1]


def _trail(bit, names, preds, limit=12):
    """The named signals on the worst path into ``bit``, source first."""
    seen, path = [], bit
    while path is not None:
        if path in names and (not seen or seen[-1] != names[path]):
            seen.append(names[path])
        path = preds.get(path)
    seen.reverse()
    if len(seen) > limit:
        seen = seen[:limit // 2] + ["..."] + seen[-limit // 2:]
    return seen


def _group(label):
    """A signal name without its bit index and yosys' suffixes."""
    label = re.sub(r"(\[\d+\])+$", "", label.split("$")[0]).rstrip("_")
    return re.sub(r"(\.\d+)+(_\w+)?$", "", label)


def newest_synth_file(name, missing):
    """The newest ``build/synth/<config>/<name>``; exits with ``missing`` if none."""
    found = sorted(BUILD.glob(f"synth/*/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(missing)
    return found[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("netlist", nargs="?", type=Path,
                    help="yosys JSON (default: the 64-bit default build's top.json)")
    ap.add_argument("--top", type=int, default=25, help="longest endpoints and groups to list")
    ap.add_argument("--via", type=int, default=8, help="named signals to show along each path")
    ap.add_argument("--trace", metavar="TEXT",
                    help="print every cell on the worst path into an endpoint whose name contains TEXT")
    ap.add_argument("--period", type=float, default=8.0, help="clock period in ns (125 MHz: 8)")
    args = ap.parse_args(argv)
    path = args.netlist or newest_synth_file("top.json", "no netlist: run python -m sim.synth --no-pnr first")
    ends, names, preds, cells, arrival = analyse(json.loads(path.read_text()))
    ends.sort(key=lambda e: -e[0])
    print(f"{path}: {len(ends)} endpoints; estimated longest path {ends[0][0]:.1f} ns "
          f"({1000 / ends[0][0]:.0f} MHz)")
    hist = Counter(int(t // 4) * 4 for t, _, _ in ends if t > args.period)
    print(f"endpoints over the {args.period} ns period: {sum(hist.values())}")
    for lo in sorted(hist, reverse=True):
        print(f"  {lo:>3}-{lo + 4:<3} ns  {hist[lo]}")
    if args.trace:
        hit = next(((t, b, sink) for t, b, sink in ends if args.trace in sink), None)
        if hit is None:
            raise SystemExit(f"no endpoint named like {args.trace!r}")
        print(f"worst path into {hit[2]} ({hit[0]:.1f} ns):")
        for t, kind, label in _steps(hit[1], names, preds, cells, arrival):
            print(f"  {t:5.1f}  {kind:<16} {label}")
        return 0
    groups = {}
    for t, b, sink in ends:
        if t <= args.period:
            break
        trail = _trail(b, names, preds, limit=1000)
        key = (_group(trail[0]) if trail else "?", _group(sink))
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [t, 1, trail]
    print("longest paths over the period by (start, end) signal: worst ns, endpoints, named signals on the worst")
    for (src, dst), (t, n, trail) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"  {t:5.1f} {n:>5}  {src} -> {dst}")
        mid = [_group(x) for x in trail[1:-1]]
        mid = [x for i, x in enumerate(mid) if x not in mid[:i] and x not in (src, dst)]
        if mid:
            print(f"              via {', '.join(mid[:args.via])}{', ...' if len(mid) > args.via else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
