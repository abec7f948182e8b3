"""``AnyOf``: a trigger that fires with the first of several.

cocotb's ``First`` starts a task for each awaitable it is given and cancels
the others when one finishes; a model that sleeps on a few triggers once per
TLP spends much of its time there. ``AnyOf`` takes triggers only and just
registers a callback on each. It uses the ``Trigger`` interface of cocotb 2.1
(``_register``, ``_prime``, ``_react``), the version ``pyproject.toml`` pins.
"""

from cocotb.triggers import Trigger

__all__ = ["AnyOf"]


class AnyOf(Trigger):
    def __init__(self, *triggers):
        if not triggers:
            raise ValueError("AnyOf needs at least one trigger")
        super().__init__()
        self._triggers = triggers
        self._handles = []
        self._fired = False

    def _prime(self):
        self._fired = False
        self._handles = []
        for t in self._triggers:
            # A trigger may fire while it is registered (an event already set).
            h = t._register(self._fire)
            if self._fired:
                self._unprime()
                return
            self._handles.append(h)

    def _fire(self):
        if self._fired:
            return
        self._fired = True
        self._unprime()
        self._react()

    def _unprime(self):
        handles, self._handles = self._handles, []
        for h in handles:
            try:
                h.cancel()
            except KeyError:        # the one that fired is no longer registered
                pass

    def __repr__(self):
        return f"AnyOf({', '.join(map(repr, self._triggers))})"
