"""Queues as the host sees them: descriptor rings and completion rings in host
memory, doorbells in BAR0. Nothing here copies payload: posting a send or a
receive writes descriptors that point at the caller's buffers, and a completion
tells the caller which of its buffers the NIC filled."""

from dataclasses import dataclass

from rtl.queues.layouts import CPL_BYTES, DESC_BYTES, Completion, DescFlags, Descriptor, QueueKind, QueueStatus, \
    pack, unpack

__all__ = ["QueueError", "QueueFull", "Buffer", "CompletionQueue", "TxQueue", "RxQueue", "Posted"]


class QueueError(RuntimeError):
    pass


class QueueFull(QueueError):
    pass


@dataclass(frozen=True)
class Buffer:
    """A piece of host memory the NIC may reach: a bus address and a length."""
    addr: int
    length: int

    @classmethod
    def of(cls, dma_buffer, offset=0, length=None):
        length = dma_buffer.size - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > dma_buffer.size:
            raise ValueError(f"{length} bytes at offset {offset} do not fit a buffer of {dma_buffer.size}")
        return cls(dma_buffer.addr + offset, length)


@dataclass
class Posted:
    """A chain the host posted and the NIC has not completed yet."""
    index: int
    buffers: list
    cookie: object = None


class CompletionQueue:
    def __init__(self, nic, index, log_size, ring, vector):
        self.nic = nic
        self.index = index
        self.log_size = log_size
        self.size = 1 << log_size
        self.ring = ring
        self.vector = vector
        self.cons = 0

    def _peek(self):
        raw = self.ring.read((self.cons & (self.size - 1)) * CPL_BYTES, CPL_BYTES)
        rec = unpack(Completion, raw)
        lap = (self.cons >> self.log_size) & 1
        return rec if rec["phase"] == 1 - lap else None

    async def poll(self, limit=None):
        """New completions (dicts of the Completion fields), oldest first; tells
        the NIC they were consumed."""
        out = []
        while limit is None or len(out) < limit:
            rec = self._peek()
            if rec is None:
                break
            rec["status"] = QueueStatus(rec["status"])
            rec["kind"] = QueueKind(rec["kind"])
            out.append(rec)
            self.cons = (self.cons + 1) & 0xFFFF
        if out:
            await self.nic.write_fields(f"CQ{self.index}_DB", CONS=self.cons)
        return out

    async def arm(self):
        await self.nic.write_fields(f"CQ{self.index}_DB", CONS=self.cons, ARM=1)

    async def wait(self, timeout_ns=None):
        """Completions, waiting for an interrupt when there are none."""
        out = await self.poll()
        if out:
            return out
        before = self.nic.t.irq_count(self.vector)
        await self.arm()
        out = await self.poll()     # one may have landed before the arm
        if out:
            return out
        while self.nic.t.irq_count(self.vector) == before:
            if not await self.nic.t.wait_irq(self.vector, timeout_ns):
                return []
        return await self.poll()


class _Ring:
    REG = None

    def __init__(self, nic, index, log_size, ring, cq):
        self.nic = nic
        self.index = index
        self.log_size = log_size
        self.size = 1 << log_size
        self.ring = ring
        self.cq = cq
        self.tail = 0          # next descriptor the host writes
        self.head = 0          # next descriptor the NIC completes
        self.posted = []       # Posted chains, oldest first

    @property
    def free(self):
        return self.size - ((self.tail - self.head) & 0xFFFF)

    def _write_chain(self, buffers, cookie):
        if not buffers:
            raise QueueError("a chain needs at least one buffer")
        if len(buffers) > self.size:
            raise QueueError(f"a chain of {len(buffers)} buffers cannot fit a ring of {self.size}")
        if len(buffers) > self.nic.build["desc_cache"]:
            raise QueueError(f"a chain of {len(buffers)} buffers is longer than the NIC takes "
                             f"({self.nic.build['desc_cache']})")
        if len(buffers) > self.free:
            raise QueueFull(f"{self.REG}{self.index}: {len(buffers)} descriptors wanted, {self.free} free")
        index = self.tail
        for k, b in enumerate(buffers):
            flags = DescFlags.MORE if k < len(buffers) - 1 else 0
            slot = (self.tail + k) & (self.size - 1)
            self.ring.write(slot * DESC_BYTES, pack(Descriptor, addr=b.addr, len=b.length, flags=flags))
        self.tail = (self.tail + len(buffers)) & 0xFFFF
        self.posted.append(Posted(index, list(buffers), cookie))
        return index

    async def doorbell(self):
        await self.nic.write_fields(f"{self.REG}{self.index}_DB", TAIL=self.tail)

    def completed(self, cpl):
        """Match a completion to the oldest posted chain (completions come in ring order)."""
        if not self.posted:
            raise QueueError(f"{self.REG}{self.index}: completion for index {cpl['index']} with nothing posted")
        p = self.posted[0]
        if cpl["index"] != p.index or cpl["ndesc"] != len(p.buffers):
            raise QueueError(f"{self.REG}{self.index}: completion for index {cpl['index']} ({cpl['ndesc']} "
                             f"descriptors), expected index {p.index} ({len(p.buffers)})")
        self.posted.pop(0)
        self.head = (self.head + len(p.buffers)) & 0xFFFF
        return p


class TxQueue(_Ring):
    REG = "TXQ"

    async def send(self, buffers, cookie=None, doorbell=True):
        """Post one frame gathered from ``buffers`` (``Buffer``s), in order."""
        index = self._write_chain(buffers, cookie)
        if doorbell:
            await self.doorbell()
        return index


class RxQueue(_Ring):
    REG = "RXQ"

    async def post(self, buffers, cookie=None, doorbell=True):
        """Post a chain of ``buffers`` that one received frame fills in order."""
        index = self._write_chain(buffers, cookie)
        if doorbell:
            await self.doorbell()
        return index
