"""What the driver needs from a machine: BAR access, DMA memory, interrupts.

The driver is written against :class:`Transport` only, so the same code drives
the simulated NIC (``sim.transport.CocotbPcieTransport``) or any other backend.
"""

from abc import ABC, abstractmethod

__all__ = ["Transport", "DmaBuffer", "TransportError"]


class TransportError(RuntimeError):
    pass


class DmaBuffer(ABC):
    """Host memory the NIC can reach by DMA. ``addr`` is its bus address."""

    addr: int
    size: int

    @abstractmethod
    def read(self, offset=0, length=None) -> bytes: ...

    @abstractmethod
    def write(self, offset, data) -> None: ...

    def _check(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise IndexError(f"DMA buffer access at {offset} of {length} bytes is outside its {self.size} bytes")


class Transport(ABC):
    @abstractmethod
    async def probe(self, vendor_id, device_id):
        """Find the function with these IDs, enable memory decoding, bus mastering
        and MSI, and map BAR0. Raise :class:`TransportError` if there is none."""

    @abstractmethod
    async def mmio_read(self, offset, length) -> bytes:
        """Read ``length`` (1 to 8) bytes at ``offset`` in BAR0, in one request."""

    @abstractmethod
    async def mmio_write(self, offset, data) -> None:
        """Write ``data`` (1 to 8 bytes) at ``offset`` in BAR0, in one request."""

    @abstractmethod
    def alloc_dma(self, size) -> DmaBuffer:
        """A page-aligned DMA buffer of ``size`` bytes."""

    @abstractmethod
    async def wait_irq(self, vector, timeout_ns=None) -> bool:
        """Wait for MSI ``vector``; True if it came, False on timeout."""

    @abstractmethod
    def irq_count(self, vector) -> int:
        """MSIs received on ``vector`` so far."""
