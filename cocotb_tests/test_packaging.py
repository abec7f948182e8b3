"""The distribution: a wheel built from this checkout installs and imports
every package on its own, with no help from the source tree."""

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rtl", "host", "sim", "cocotb_tests")


def _modules():
    """Every module of the project's packages, as dotted names."""
    out = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = f.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out.append(".".join(parts))
    return out


def test_wheel_installs_and_imports_every_module(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("ptlnic-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # Isolated (-I) and without the site module (-S), so that neither the
    # checkout nor its editable install can be found: only the wheel's files
    # and the third-party packages of this environment.
    deps = sysconfig.get_paths()["purelib"]
    mods = _modules()
    code = (f"import sys; sys.path[:0] = [{str(target)!r}, {deps!r}]\n"
            "import importlib\n"
            f"for name in {mods!r}:\n"
            "    mod = importlib.import_module(name)\n"
            f"    assert mod.__file__.startswith({str(target)!r}), (name, mod.__file__)\n"
            "print(len(" + repr(mods) + "))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == len(mods) >= 40
    # Data files the modules open at run time came along too.
    for f in (ROOT / "sim" / "fst").iterdir():
        assert (target / "sim" / "fst" / f.name).read_bytes() == f.read_bytes(), f.name
