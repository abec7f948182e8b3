"""Debug aids for hung simulations."""

import re
from cocotb.handle import _HierarchyObjectBase as HierarchyObjectBase, ValueObjectBase


def dump(handle, pat, prefix="", out=None, depth=0):
    """``name=value`` of every signal under ``handle`` whose hierarchical name
    matches the regular expression ``pat``. Internal signals are reachable only
    in models built with PTLNIC_VISIBLE=1."""
    out = [] if out is None else out
    if depth > 6:
        return out
    for key, h in handle._items():
        name = f"{prefix}{key}"
        if isinstance(h, HierarchyObjectBase):
            dump(h, pat, name + ".", out, depth + 1)
        elif isinstance(h, ValueObjectBase) and re.search(pat, name):
            try:
                v = h.value
                try:
                    v = int(v)
                except Exception:
                    pass
                out.append(f"{name}={v}")
            except Exception as e:
                out.append(f"{name}=?{e}")
    return out
