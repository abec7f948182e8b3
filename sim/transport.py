"""The driver's transport on a cocotbext-pcie root complex."""

from cocotb.triggers import Event, First, Timer

from host.transport import DmaBuffer, Transport, TransportError

__all__ = ["CocotbPcieTransport", "RcDmaBuffer"]


class RcDmaBuffer(DmaBuffer):
    def __init__(self, region):
        self.region = region
        self.addr = region.get_absolute_address(0)
        self.size = region.size

    def read(self, offset=0, length=None):
        length = self.size - offset if length is None else length
        self._check(offset, length)
        return bytes(self.region.mem[offset:offset + length])

    def write(self, offset, data):
        self._check(offset, len(data))
        self.region.mem[offset:offset + len(data)] = data


class _CountingEvent(Event):
    """The MSI vector's event, counting every time the root complex sets it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def set(self, *args, **kwargs):
        self.count += 1
        super().set(*args, **kwargs)


class CocotbPcieTransport(Transport):
    def __init__(self, rc):
        self.rc = rc
        self.dev = None
        self.bar = None

    def _walk(self, bus):
        yield from bus.devices
        for child in bus.children:
            yield from self._walk(child)

    async def probe(self, vendor_id, device_id):
        for dev in self._walk(self.rc.host_bridge.bus):
            if dev.vendor_id == vendor_id and dev.device_id == device_id:
                break
        else:
            raise TransportError(f"no PCIe function {vendor_id:04x}:{device_id:04x} on the bus")
        await dev.enable_device()
        await dev.set_master()
        nvec = await dev.alloc_irq_vectors(1, 32)
        if nvec < 1:
            raise TransportError("the function offers no MSI vectors")
        for v in range(nvec):
            dev.msi_vectors[v].event = _CountingEvent()
        self.dev = dev
        self.bar = dev.bar_window[0]
        self.nvec = nvec

    async def mmio_read(self, offset, length):
        return bytes(await self.bar.read(offset, length))

    async def mmio_write(self, offset, data):
        await self.bar.write(offset, bytes(data))

    def alloc_dma(self, size):
        return RcDmaBuffer(self.rc.mem_pool.alloc_region(max(4096, (size + 4095) & ~4095)))

    async def wait_irq(self, vector, timeout_ns=None):
        vec = self.dev.msi_vectors[vector]
        waits = [vec.event.wait()]
        if timeout_ns:
            waits.append(Timer(timeout_ns, "ns"))
        await First(*waits)
        fired = vec.event.is_set()
        vec.event.clear()
        return fired

    def irq_count(self, vector):
        return self.dev.msi_vectors[vector].event.count
