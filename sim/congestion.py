"""Estimated routing congestion of a placed design, by block: where routing
will run out of wires, in a minute instead of the half hour routing takes.

    python -m sim.synth --place-only       # writes build/synth/<config>/placed.json
    python -m sim.congestion [placed.json] [--hot 2]

Each net spreads its estimated wire over its pins' bounding box: half
perimeter over area per tile, more for more pins (the "RUDY" estimate used by
placement tools). The tiles in the top ``--hot`` percent of demand are the
hot spots; the report gives their area, which blocks' nets (by the cell
driving each net) make up the demand there, and which blocks' cells sit
there. Like ``sim.paths`` this ranks, it does not predict: nextpnr's router
is the judge.
"""

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from .paths import newest_synth_file

__all__ = ["estimate", "main"]

#: Nets with more pins than this are global (the clock) and not counted.
GLOBAL_PINS = 2000


def block_of(cell_name):
    """The block a cell belongs to: the first three parts of its name."""
    parts = cell_name.split("$")[0].split(".")
    return ".".join(parts[:3]) if parts[0] == "nic" else parts[0]


def estimate(netlist):
    """(grid, nets, cells): demand per tile as ``grid[y][x]``; each counted
    net as (driver block, x0, x1, y0, y1, demand per tile); each placed
    cell's block and tile."""
    mod = netlist["modules"]["top"]
    pins, driver, cells = defaultdict(list), {}, []
    for name, cell in mod["cells"].items():
        bel = cell.get("attributes", {}).get("NEXTPNR_BEL")
        if not bel:
            continue
        x, y = (int(v[1:]) for v in bel.split("/")[:2])
        cells.append((block_of(name), x, y))
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for b in bits:
                if isinstance(b, int):
                    pins[b].append((x, y))
                    if dirs.get(port) == "output":
                        driver[b] = name
    X = max(x for _, x, _ in cells) + 1
    Y = max(y for _, _, y in cells) + 1
    diff = [[0.0] * (X + 1) for _ in range(Y + 1)]
    nets = []
    for b, where in pins.items():
        if len(where) < 2 or b not in driver or len(where) > GLOBAL_PINS:
            continue
        xs = [p[0] for p in where]
        ys = [p[1] for p in where]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        w, h = x1 - x0 + 1, y1 - y0 + 1
        demand = (w + h) / (w * h) * (1 + 0.1 * (len(where) - 2))
        diff[y0][x0] += demand
        diff[y0][x1 + 1] -= demand
        diff[y1 + 1][x0] -= demand
        diff[y1 + 1][x1 + 1] += demand
        nets.append((block_of(driver[b]), x0, x1, y0, y1, demand))
    grid = [[0.0] * X for _ in range(Y)]
    for y in range(Y):
        run = 0.0
        for x in range(X):
            run += diff[y][x]
            grid[y][x] = run + (grid[y - 1][x] if y else 0.0)
    return grid, nets, cells


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("placed", nargs="?", type=Path,
                    help="nextpnr's placed JSON (default: the newest build/synth/*/placed.json)")
    ap.add_argument("--hot", type=float, default=2.0, help="percent of the used tiles counted as hot")
    ap.add_argument("--top", type=int, default=12, help="blocks to list")
    args = ap.parse_args(argv)
    path = args.placed or newest_synth_file("placed.json",
                                            "no placed design: run python -m sim.synth --place-only first")
    grid, nets, cells = estimate(json.loads(path.read_text()))
    used = sorted(v for row in grid for v in row if v > 0)
    if not used:
        raise SystemExit(f"{path}: no placed nets")
    threshold = used[min(len(used) - 1, int(len(used) * (1 - args.hot / 100)))]
    hot = [[v >= threshold for v in row] for row in grid]
    spots = [(x, y) for y, row in enumerate(hot) for x, v in enumerate(row) if v]
    # Hot tiles in a net's box, in O(1) per net: a prefix count of the hot tiles.
    Y, X = len(grid), len(grid[0])
    pre = [[0] * (X + 1) for _ in range(Y + 1)]
    for y in range(Y):
        for x in range(X):
            pre[y + 1][x + 1] = pre[y][x + 1] + pre[y + 1][x] - pre[y][x] + hot[y][x]
    demand = Counter()
    for blk, x0, x1, y0, y1, d in nets:
        n = pre[y1 + 1][x1 + 1] - pre[y0][x1 + 1] - pre[y1 + 1][x0] + pre[y0][x0]
        demand[blk] += d * n
    total = sum(demand.values()) or 1.0
    peak = max(used)
    print(f"{path}: {len(nets)} nets on {len(used)} tiles; demand per tile: median {used[len(used) // 2]:.0f}, "
          f"peak {peak:.0f}")
    xs, ys = [x for x, _ in spots], [y for _, y in spots]
    print(f"hot tiles (top {args.hot:g} %, demand >= {threshold:.0f}): {len(spots)}, "
          f"x {min(xs)}-{max(xs)}, y {min(ys)}-{max(ys)}")
    print("demand on the hot tiles, by the block driving each net:")
    for blk, d in demand.most_common(args.top):
        print(f"  {100 * d / total:5.1f} %  {blk}")
    print("cells placed on the hot tiles, by block:")
    for blk, n in Counter(b for b, x, y in cells if hot[y][x]).most_common(args.top):
        print(f"  {n:6d}  {blk}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
