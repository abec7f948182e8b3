"""Per-entry state bits in flip-flops, for what a scheduler must see for every
entry at once, and running counts compared across wrap-around."""

from amaranth.hdl import Const, Mux, Signal

__all__ = ["FlagBits", "bit_mask", "passed"]


def bit_mask(n, en, i):
    """An ``n``-bit mask with bit ``i`` set when ``en``."""
    return Mux(en, (Const(1, n) << i)[:n], 0)


def passed(count, mark):
    """A 16-bit running ``count`` has reached ``mark`` (both wrap; they are
    never more than 2**15 apart)."""
    return (count - mark)[15] == 0


class FlagBits:
    """``n`` one-bit flags, one per entry, set and cleared from several places
    in one cycle; set wins over clear, so that a late event is never lost to
    a decision taken on older state. Call :meth:`apply` once, after every
    :meth:`set` and :meth:`clear` (they take conditions, not ``m.If`` blocks)."""

    def __init__(self, name, n, init=0):
        self.value = Signal(n, name=name, init=init)
        self.n = n
        self._sets = []
        self._clears = []

    def __getitem__(self, i):
        return self.value[i]

    def bit(self, i):
        """Flag ``i``, an Amaranth value."""
        return self.value.bit_select(i, 1)

    def set(self, en, i):
        self._sets.append(bit_mask(self.n, en, i))

    def clear(self, en, i):
        self._clears.append(bit_mask(self.n, en, i))

    def set_mask(self, mask):
        self._sets.append(mask)

    def clear_mask(self, mask):
        self._clears.append(mask)

    def apply(self, m):
        s = Const(0, self.n)
        for x in self._sets:
            s = s | x
        c = Const(0, self.n)
        for x in self._clears:
            c = c | x
        m.d.sync += self.value.eq((self.value & ~c) | s)
