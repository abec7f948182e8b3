"""Block RAM for per-entry state: memories that synthesis maps to block RAM
even when shallow, read synchronously without the logic a read of the entry
being written would otherwise cost.

A block RAM's read and write ports cannot return the old value of an entry
written in the same cycle; a synchronous read port that asks for it makes
synthesis add a bypass register and multiplexer as wide as the data. The
readers here never need it (the units that write an entry and those that read
it in the same cycle are kept apart by the design, each place says how), so
the read is an asynchronous port followed by a register, which synthesis
folds into the block RAM with ``no_rw_check``: read-during-write gives an
undefined value, and nothing is added. In simulation the register captures
the old value, as a synchronous port would.
"""

from amaranth.hdl import Mux, Signal
from amaranth.lib.memory import Memory

__all__ = ["block_memory", "state_memory", "sync_read", "fresh_read", "WriteStamps", "DISTRIBUTED_MAX"]

#: Per-entry state of at most this many entries goes into distributed RAM
#: (``state_memory``): a few cells per read port, and its registered read is
#: a flip-flop's output, not a block RAM's (about 5 ns later in the cycle).
DISTRIBUTED_MAX = 64


def block_memory(*, shape, depth, style="block"):
    """A memory of ``depth`` entries of ``shape`` for block RAM (``style``
    "block"), or distributed RAM ("distributed")."""
    return Memory(shape=shape, depth=depth, init=[], attrs={"ram_style": style, "no_rw_check": 1})


def state_memory(*, shape, depth):
    """A :func:`block_memory` for per-entry state: distributed RAM up to
    :data:`DISTRIBUTED_MAX` entries (the default build's queues and
    completion queues), block RAM for more."""
    return block_memory(shape=shape, depth=depth, style="distributed" if depth <= DISTRIBUTED_MAX else "block")


def sync_read(m, mem, addr, en=None, name=None):
    """Read ``mem`` at ``addr``; the entry is in the returned signal on the
    next cycle (held while ``en`` is low). Never transparent: an entry written
    in the same cycle reads as undefined in hardware."""
    rp = mem.read_port(domain="comb")
    data = Signal(mem.shape, name=name)
    m.d.comb += rp.addr.eq(addr)
    if en is None:
        m.d.sync += data.eq(rp.data)
    else:
        with m.If(en):
            m.d.sync += data.eq(rp.data)
    return data


def fresh_read(m, mem, addr, wp, en=None, own=False, name=None):
    """:func:`sync_read` of ``mem`` at ``addr`` that returns what write port
    ``wp`` writes there in the cycle of the read, or (with ``en`` low, the
    entry held) later (a register and a multiplexer beside the memory, for
    entries whose owner may rewrite them while others read them).

    Only a block RAM needs it to be defined at all: a distributed RAM read in
    the cycle of a write returns the entry as it was, which a reader that does
    not need its own writes at once can take (the write is seen a cycle
    later). So the bypass is built for memories deeper than
    :data:`DISTRIBUTED_MAX`, or with ``own`` (the reader is the writer, and
    decides on what it wrote a cycle before)."""
    if not own and mem.depth <= DISTRIBUTED_MAX:
        return sync_read(m, mem, addr, en=en, name=name)
    old = sync_read(m, mem, addr, en=en, name=None if name is None else f"{name}_mem")
    hit = Signal(name=None if name is None else f"{name}_hit")
    new = Signal(mem.shape, name=None if name is None else f"{name}_new")
    if en is None:
        m.d.sync += [hit.eq(wp.en.any() & (wp.addr == addr)), new.eq(wp.data)]
    else:
        held = Signal.like(addr, name=None if name is None else f"{name}_addr")
        with m.If(en):
            m.d.sync += [held.eq(addr), hit.eq(wp.en.any() & (wp.addr == addr)), new.eq(wp.data)]
        with m.Elif(wp.en.any() & (wp.addr == held)):
            m.d.sync += [hit.eq(1), new.eq(wp.data)]
    out = Signal(mem.shape, name=name)
    m.d.comb += out.eq(Mux(hit, new, old))
    return out


class WriteStamps:
    """Which entries were written since their owner last looked, without a
    flag per entry: each write event stamps its entry with a running count
    (never 0) in one memory, and the owner records the stamp it has taken
    in another; an entry is stale while they differ. ``ev_stb``/``ev_addr``:
    the write events (one a cycle)."""

    def __init__(self, m, depth, ev_stb, ev_addr, name):
        self._m = m
        self._count = Signal(16, init=1, name=f"{name}_count")
        self._stamps = Memory(shape=16, depth=depth, init=[])
        self._seen = Memory(shape=16, depth=depth, init=[])
        m.submodules[f"{name}_stamps"] = self._stamps
        m.submodules[f"{name}_seen"] = self._seen
        self._stamp_wp = self._stamps.write_port()
        self.seen_wp = self._seen.write_port()
        nxt = (self._count + 1)[:16]
        with m.If(ev_stb):
            m.d.sync += self._count.eq(Mux(nxt == 0, 1, nxt))
        m.d.comb += [self._stamp_wp.addr.eq(ev_addr), self._stamp_wp.data.eq(self._count),
                     self._stamp_wp.en.eq(ev_stb)]

    def read(self, addr, name, own=False):
        """The stamp of entry ``addr`` and whether it is stale, on the next
        cycle (``own``: for the owner, which sees what it took a cycle ago)."""
        stamp = fresh_read(self._m, self._stamps, addr, self._stamp_wp, own=own, name=f"{name}_stamp")
        seen = fresh_read(self._m, self._seen, addr, self.seen_wp, own=own, name=f"{name}_seen")
        return stamp, stamp != seen

    def take(self, addr, stamp):
        """Statements: the owner has taken entry ``addr`` up to ``stamp``."""
        wp = self.seen_wp
        return [wp.addr.eq(addr), wp.data.eq(stamp), wp.en.eq(1)]
