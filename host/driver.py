"""The ptlnic host driver core: registers by name, DMA self-test, interrupts."""

import random
from dataclasses import dataclass
from types import SimpleNamespace

from rtl.config import NicConfig
from rtl.regmap import COUNTER_NAMES, MAGIC, REGMAP, VERSION, DmaStatus, regmap

from .queues import CompletionQueue, RxQueue, TxQueue
from .transport import TransportError

__all__ = ["PtlNic", "DmaRun", "DriverError"]


class DriverError(RuntimeError):
    pass


@dataclass
class DmaRun:
    """Outcome of one DMA self-test run, as the NIC reports it."""
    write: bool
    length: int
    count: int
    done: int
    errors: int
    first_error: DmaStatus
    cycles: int

    @property
    def ok(self):
        return self.errors == 0 and self.first_error == DmaStatus.OK and self.done == self.count

    @property
    def bytes(self):
        return self.length * self.count


class PtlNic:
    """A ptlnic function reached through a :class:`~host.transport.Transport`."""

    #: IDs the driver binds to (those of the default build).
    VENDOR_ID = NicConfig().vendor_id
    DEVICE_ID = NicConfig().device_id

    def __init__(self, transport):
        self.t = transport
        self.regs = REGMAP
        self.build = None
        self._irqs_on = False

    @classmethod
    async def open(cls, transport):
        """Probe the device, check that it is a ptlnic of a known register map,
        and read its build configuration."""
        await transport.probe(cls.VENDOR_ID, cls.DEVICE_ID)
        nic = cls(transport)
        magic = await nic.read("MAGIC")
        if magic != MAGIC:
            raise DriverError(f"BAR0 MAGIC reads {magic:#010x}, expected {MAGIC:#010x}: not a ptlnic")
        ver = REGMAP["VERSION"].unpack(await nic.read("VERSION"))
        if ver["MAJOR"] != VERSION[0]:
            raise DriverError(f"register map version {ver['MAJOR']}.{ver['MINOR']} is not supported "
                              f"(driver speaks {VERSION[0]}.x)")
        nic.build = await nic.read_build()
        nic.regs = regmap(SimpleNamespace(**{k: nic.build[k] for k in ("num_queues", "num_cqs", "num_mrs")}))
        # After a reset the register tables clear themselves, one entry a cycle.
        await nic._wait_state("STATUS", "RESET_BUSY", 0, "the NIC did not finish its reset")
        await nic.enable_irqs()
        return nic

    # ---------------------------------------------------------- registers
    def _reg(self, name):
        try:
            return self.regs[name]
        except KeyError:
            raise DriverError(f"no register named {name!r}") from None

    async def read(self, name):
        reg = self._reg(name)
        raw = await self.t.mmio_read(reg.addr, reg.width // 8)
        return int.from_bytes(raw, "little")

    async def write(self, name, value):
        reg = self._reg(name)
        if reg.access not in ("rw", "wo"):
            raise DriverError(f"register {name} is {reg.access}, not writable")
        if value >> reg.width:
            raise DriverError(f"value {value:#x} does not fit the {reg.width}-bit register {name}")
        await self.t.mmio_write(reg.addr, value.to_bytes(reg.width // 8, "little"))

    async def read_fields(self, name):
        return self._reg(name).unpack(await self.read(name))

    async def write_fields(self, name, **fields):
        await self.write(name, self._reg(name).pack(**fields))

    async def read_build(self):
        dp = await self.read_fields("BUILD_DATAPATH")
        dma = await self.read_fields("BUILD_DMA")
        misc = await self.read_fields("BUILD_MISC")
        qs = await self.read_fields("BUILD_QUEUES")
        eth = await self.read_fields("BUILD_ETH")
        return {
            "num_queues": qs["NUM_QUEUES"], "num_cqs": qs["NUM_CQS"], "desc_cache": qs["DESC_CACHE"],
            "num_mrs": qs["NUM_MRS"], "max_frame": eth["MAX_FRAME"],
            "data_width": dp["DATA_WIDTH"], "dma_tags": dp["DMA_TAGS"],
            "max_payload_size": dma["MAX_PAYLOAD"], "max_read_request_size": dma["MAX_READ_REQ"],
            "dma_read_buffer": await self.read("BUILD_READ_BUFFER"),
            "dma_test_mem": await self.read("BUILD_TEST_MEM"),
            "mmio_max_dw": misc["MMIO_MAX_DW"], "msi_vectors": misc["MSI_VECTORS"],
            "bar0_size": 1 << misc["BAR0_LOG2"],
        }

    async def counters(self):
        return {name: await self.read(name) for name in COUNTER_NAMES}

    async def clear_counters(self):
        await self.write_fields("COUNTER_CLEAR", CLEAR=1)

    async def soft_reset(self, polls=1000):
        """Reset the NIC's engines and registers, then restore what the driver set up."""
        await self.write_fields("SOFT_RESET", RESET=1)
        for _ in range(polls):
            if not (await self.read_fields("STATUS"))["RESET_BUSY"]:
                break
        else:
            raise DriverError("soft reset did not finish")
        await self.enable_irqs(self._irqs_on)

    async def enable_irqs(self, on=True):
        self._irqs_on = on
        await self.write_fields("CONTROL", IRQ_ENABLE=int(on))

    # ---------------------------------------------------------- queues
    def _check_index(self, what, index, count):
        if not 0 <= index < count:
            raise DriverError(f"{what} {index} does not exist: this NIC has {count} (0 .. {count - 1})")

    @staticmethod
    def _check_log_size(log_size):
        if not 1 <= log_size <= 15:
            raise DriverError(f"a ring holds 2**log_size entries with log_size from 1 to 15, not {log_size}")

    async def create_cq(self, index, log_size, *, vector=0, mod_count=1, mod_time=0):
        """Set up completion queue ``index``: a ring of 2**log_size records in host
        memory; interrupts on MSI ``vector`` once ``mod_count`` completions are
        unconsumed or one has waited ``mod_time`` cycles (0: no timer)."""
        self._check_index("completion queue", index, self.build["num_cqs"])
        self._check_log_size(log_size)
        if not 0 <= vector < self.build["msi_vectors"]:
            raise DriverError(f"MSI vector {vector} does not exist (0 .. {self.build['msi_vectors'] - 1})")
        ring = self.t.alloc_dma(16 << log_size)
        ring.write(0, bytes(16 << log_size))
        await self.write_fields(f"CQ{index}_CTRL", ENABLE=0)
        await self.write(f"CQ{index}_BASE", ring.addr)
        await self.write(f"CQ{index}_MOD_TIME", mod_time)
        await self.write_fields(f"CQ{index}_CTRL", ENABLE=1, LOG_SIZE=log_size, VECTOR=vector, MOD_COUNT=mod_count)
        await self._wait_state(f"CQ{index}_STATUS", "ACTIVE", 1, f"completion queue {index} did not start")
        return CompletionQueue(self, index, log_size, ring, vector)

    async def _wait_state(self, reg, field, value, what, polls=10_000):
        """Poll ``reg.field`` until it reads ``value``."""
        for _ in range(polls):
            got = await self.read_fields(reg)
            if got[field] == value:
                return got
        raise DriverError(f"{what}: {reg} still reads {got} after {polls} polls")

    async def _create_ring(self, cls, kind, index, log_size, cq, pd):
        self._check_index(f"{kind} queue", index, self.build["num_queues"])
        self._check_log_size(log_size)
        ring = self.t.alloc_dma(16 << log_size)
        reg = f"{cls.REG}{index}"
        await self.write_fields(f"{reg}_CTRL", ENABLE=0)
        await self.write(f"{reg}_BASE", ring.addr)
        await self.write_fields(f"{reg}_CTRL", ENABLE=1, LOG_SIZE=log_size, CQ=cq.index, PD=pd)
        # It starts once anything of an earlier incarnation has drained.
        await self._wait_state(f"{reg}_ERROR", "ACTIVE", 1, f"{kind} queue {index} did not start")
        return cls(self, index, log_size, ring, cq)

    async def create_tx_queue(self, index, log_size, cq, pd=0):
        """Set up transmit queue ``index`` (ring of 2**log_size descriptors),
        completing on ``cq``, in protection domain ``pd``."""
        return await self._create_ring(TxQueue, "transmit", index, log_size, cq, pd)

    async def create_rx_queue(self, index, log_size, cq, pd=0):
        return await self._create_ring(RxQueue, "receive", index, log_size, cq, pd)

    async def destroy_queue(self, queue):
        """Stop a queue and return once nothing of it is in flight: no descriptor
        fetch, no chain, no completion still to land (its ring memory and
        buffers may then be reused). A completion queue is stopped once every
        slot promised to its queues has been written or dropped; destroy the
        queues bound to it first."""
        cq = isinstance(queue, CompletionQueue)
        reg = f"CQ{queue.index}" if cq else f"{queue.REG}{queue.index}"
        await self.write_fields(f"{reg}_CTRL", ENABLE=0)
        await self._wait_state(f"{reg}_STATUS" if cq else f"{reg}_ERROR", "DRAINING", 0,
                               f"{reg} did not drain")

    async def register_mr(self, index, addr, length, *, pd=0, read=True, write=True):
        """Let protection domain ``pd`` use ``[addr, addr + length)``: transmit
        queues may read it when ``read``, receive queues write it when ``write``."""
        self._check_index("memory region", index, self.build["num_mrs"])
        if addr < 0 or length < 0 or addr + length > 1 << 64:
            raise DriverError(f"memory region of {length} bytes at {addr:#x} runs past the 64-bit address space")
        await self.write_fields(f"MR{index}_CTRL", ENABLE=0)
        await self.write(f"MR{index}_BASE", addr)
        await self.write(f"MR{index}_LEN", length)
        await self.write_fields(f"MR{index}_CTRL", ENABLE=1, READ=int(read), WRITE=int(write), PD=pd)

    async def unregister_mr(self, index):
        self._check_index("memory region", index, self.build["num_mrs"])
        await self.write_fields(f"MR{index}_CTRL", ENABLE=0)

    # ---------------------------------------------------------- DMA self-test
    async def dma_run(self, *, write, host_addr, length, nic_addr=0, count=1, stride=0, irq=False,
                      vector=0, timeout_ns=None, poll_limit=1_000_000):
        """Run ``count`` DMA operations between host memory and NIC memory and
        wait for the run to end (by MSI when ``irq``, else by polling)."""
        if irq:
            await self.write_fields("DMA_TEST_VECTOR", VECTOR=vector)
        await self.write("DMA_TEST_HOST_ADDR", host_addr)
        await self.write("DMA_TEST_NIC_ADDR", nic_addr)
        await self.write("DMA_TEST_LEN", length)
        await self.write("DMA_TEST_COUNT", count)
        await self.write("DMA_TEST_STRIDE", stride)
        before = self.t.irq_count(vector) if irq else 0
        await self.write_fields("DMA_TEST_CTRL", START=1, WRITE=int(write), IRQ=int(irq))
        if irq:
            while self.t.irq_count(vector) == before:
                if not await self.t.wait_irq(vector, timeout_ns):
                    status = await self.read_fields("DMA_TEST_STATUS")
                    raise DriverError(f"no MSI {vector} within {timeout_ns} ns of starting the DMA run; "
                                      f"DMA_TEST_STATUS {status}, DONE {await self.read('DMA_TEST_DONE')}, "
                                      f"STATUS {await self.read_fields('STATUS')}")
            status = await self.read_fields("DMA_TEST_STATUS")
        else:
            for _ in range(poll_limit):
                status = await self.read_fields("DMA_TEST_STATUS")
                if not status["BUSY"]:
                    break
            else:
                raise DriverError("DMA run still busy after polling")
        return DmaRun(write=write, length=length, count=count, done=await self.read("DMA_TEST_DONE"),
                      errors=await self.read("DMA_TEST_ERRORS"), first_error=DmaStatus(status["FIRST_ERROR"]),
                      cycles=await self.read("DMA_TEST_CYCLES"))

    async def dma_self_test(self, length, *, nic_addr=0, src_offset=0, dst_offset=0, data=None, irq=False, seed=0):
        """Host buffer -> NIC memory -> another host buffer, then compare.

        The pattern is ``data``, or bytes drawn from a generator seeded with
        ``seed`` (so a failure replays). Returns ``(read_run, write_run)``;
        raises :class:`DriverError` on any error status or if the data that
        came back differs."""
        if data is None:
            data = random.Random(seed).randbytes(length)
        src = self.t.alloc_dma(src_offset + length + 1)
        dst = self.t.alloc_dma(dst_offset + length + 1)
        src.write(src_offset, data)
        dst.write(0, b"\x5a" * dst.size)
        rd = await self.dma_run(write=False, host_addr=src.addr + src_offset, length=length, nic_addr=nic_addr,
                                irq=irq)
        if not rd.ok:
            raise DriverError(f"DMA read of {length} bytes failed: {rd.first_error.name}, {rd.errors} errors")
        wr = await self.dma_run(write=True, host_addr=dst.addr + dst_offset, length=length, nic_addr=nic_addr,
                                irq=irq)
        if not wr.ok:
            raise DriverError(f"DMA write of {length} bytes failed: {wr.first_error.name}, {wr.errors} errors")
        back = dst.read(dst_offset, length)
        if back != data:
            bad = next(i for i in range(length) if back[i] != data[i])
            raise DriverError(f"DMA self-test of {length} bytes: first difference at byte {bad}: "
                              f"wrote {data[bad]:#04x}, read back {back[bad]:#04x}")
        if dst.read(0, dst_offset) != b"\x5a" * dst_offset or dst.read(dst_offset + length, 1) != b"\x5a":
            raise DriverError(f"DMA self-test of {length} bytes wrote outside its destination")
        return rd, wr


__all__ += ["TransportError"]
