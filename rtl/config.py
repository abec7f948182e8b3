"""Build-time configuration of the NIC.

Every component takes a :class:`NicConfig`; the register file publishes it
(``BUILD_*`` registers) so that the host driver can check what it talks to.
"""

from dataclasses import dataclass, asdict, replace

__all__ = ["NicConfig", "ConfigError", "LARGE"]

#: The large build: 256 transmit and 256 receive queues and 256 completion
#: queues, with descriptor caches of 8 and an 8 KiB DMA self-test buffer (so
#: that they fit the block RAM of an LFE5U-85F) and a 4 MiB BAR0 (768
#: doorbell pages).
LARGE = dict(num_queues=256, num_cqs=256, desc_cache=8, dma_test_mem=8192, bar0_size=1 << 22)


class ConfigError(ValueError):
    """A :class:`NicConfig` parameter is out of range; the message says which and why."""


def _is_pow2(n):
    return n > 0 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class NicConfig:
    """Parameters of one NIC build.

    data_width
        Width of the TLP data beats and of every internal data stream, in bits
        (64, 128 or 256). One beat moves ``data_width // 8`` bytes per cycle.
    dma_tags
        Read requests the DMA read engine keeps in flight (PCIe tags), 1 to 256.
    dma_read_buffer
        Bytes of completion reorder buffer in the DMA read engine (power of two).
        Bounds the bytes in flight: to keep the link busy it must cover the
        host read latency times the datapath width.
    max_payload_size / max_read_request_size
        Upper bounds, in bytes, on what the engines use; the values the host
        programs into the PCIe device control register lower them further.
    cpl_timeout
        Default completion timeout of the read engine, in cycles (the
        ``DMA_CPL_TIMEOUT`` register overrides it at run time).
    dma_test_mem
        Bytes of on-chip NIC memory behind the DMA self-test registers.
    mmio_max_dw
        Longest MMIO request, in DWORDs, that BAR0 serves; longer reads are
        answered with Completer Abort, longer writes are dropped and counted.
    bar0_size
        Size of BAR0 in bytes (power of two, at least 64 KiB).
    msi_vectors
        MSI vectors the function asks for (1, 2, 4, ... 32).
    num_queues
        Transmit queues, and as many receive queues (a power of two: received
        frames are steered to a queue by their destination address).
    num_cqs
        Completion queues.
    desc_cache
        Descriptors the NIC holds per queue; also the longest chain (frame) a
        queue may post.
    num_mrs
        Memory regions in the protection table.
    tx_fifo / rx_fifo
        Bytes of transmit and receive frame buffer (store and forward).
    max_frame
        Longest frame accepted from the wire, FCS included; longer ones are
        dropped as oversize.
    """

    data_width: int = 256
    dma_tags: int = 32
    dma_read_buffer: int = 16384
    max_payload_size: int = 512
    max_read_request_size: int = 512
    cpl_timeout: int = 50_000
    dma_test_mem: int = 65536
    mmio_max_dw: int = 16
    bar0_size: int = 1 << 20
    msi_vectors: int = 4
    num_queues: int = 8
    num_cqs: int = 16
    desc_cache: int = 32
    num_mrs: int = 8
    tx_fifo: int = 32768
    rx_fifo: int = 32768
    max_frame: int = 9216
    vendor_id: int = 0x1234
    device_id: int = 0x9034
    revision: int = 1

    def __post_init__(self):
        if self.data_width not in (64, 128, 256):
            raise ConfigError(f"data_width must be 64, 128 or 256 bits, not {self.data_width}"
                              + (" (512-bit beats are not built or tested yet)" if self.data_width == 512 else ""))
        if not (2 <= self.dma_tags <= 256) or not _is_pow2(self.dma_tags):
            raise ConfigError(f"dma_tags must be a power of two from 2 to 256, not {self.dma_tags}")
        for name in ("max_payload_size", "max_read_request_size"):
            v = getattr(self, name)
            if not _is_pow2(v) or not (128 <= v <= 4096):
                raise ConfigError(f"{name} must be a power of two from 128 to 4096 bytes, not {v}")
        if self.max_payload_size < self.beat_bytes or self.max_read_request_size < self.beat_bytes:
            raise ConfigError("max_payload_size and max_read_request_size must be at least one beat "
                              f"({self.beat_bytes} bytes)")
        if not _is_pow2(self.dma_read_buffer) or self.dma_read_buffer < 2 * self.max_read_request_size:
            raise ConfigError("dma_read_buffer must be a power of two of at least two read requests "
                              f"({2 * self.max_read_request_size} bytes), not {self.dma_read_buffer}")
        if not _is_pow2(self.dma_test_mem) or self.dma_test_mem < 4 * self.beat_bytes:
            raise ConfigError(f"dma_test_mem must be a power of two of at least four beats, not {self.dma_test_mem}")
        if not (1 <= self.mmio_max_dw <= 64):
            raise ConfigError(f"mmio_max_dw must be from 1 to 64 DWORDs, not {self.mmio_max_dw}")
        if not _is_pow2(self.bar0_size) or self.bar0_size < 65536:
            raise ConfigError(f"bar0_size must be a power of two of at least 64 KiB, not {self.bar0_size}")
        if not _is_pow2(self.msi_vectors) or self.msi_vectors > 32:
            raise ConfigError(f"msi_vectors must be 1, 2, 4, 8, 16 or 32, not {self.msi_vectors}")
        if not (16 <= self.cpl_timeout < 1 << 24):
            raise ConfigError(f"cpl_timeout must be from 16 to 2**24-1 cycles, not {self.cpl_timeout}")
        if not _is_pow2(self.num_queues) or not (2 <= self.num_queues <= 256):
            raise ConfigError(f"num_queues must be a power of two from 2 to 256, not {self.num_queues}")
        if not (1 <= self.num_cqs <= 256):
            raise ConfigError(f"num_cqs must be from 1 to 256, not {self.num_cqs}")
        if not _is_pow2(self.desc_cache) or not (2 <= self.desc_cache <= 64):
            raise ConfigError(f"desc_cache must be a power of two from 2 to 64, not {self.desc_cache}")
        if not (1 <= self.num_mrs <= 64):
            raise ConfigError(f"num_mrs must be from 1 to 64, not {self.num_mrs}")
        if not (64 <= self.max_frame <= 16000):
            raise ConfigError(f"max_frame must be from 64 to 16000 bytes, not {self.max_frame}")
        for name in ("tx_fifo", "rx_fifo"):
            v = getattr(self, name)
            if not _is_pow2(v) or v < 2 * self.max_frame:
                raise ConfigError(f"{name} must be a power of two of at least two maximum frames "
                                  f"({2 * self.max_frame} bytes), not {v}")
        pages = 2 * self.num_queues + self.num_cqs
        if 0x10000 + pages * 0x1000 > self.bar0_size:
            raise ConfigError(f"bar0_size of {self.bar0_size} bytes has no room for {pages} doorbell pages "
                              f"after the first 64 KiB")
        if not (0 <= self.vendor_id <= 0xFFFF and 0 <= self.device_id <= 0xFFFF):
            raise ConfigError("vendor_id and device_id are 16-bit values")

    # Derived quantities, used by RTL, host and tests alike.
    @property
    def beat_bytes(self):
        return self.data_width // 8

    @property
    def beat_dws(self):
        return self.data_width // 32

    def key(self):
        """A short stable name for build caches and test ids."""
        default = asdict(NicConfig())
        parts = [f"w{self.data_width}"]
        parts += [f"{k}{v}" for k, v in asdict(self).items() if k != "data_width" and default[k] != v]
        return "-".join(parts)

    def with_(self, **kw):
        return replace(self, **kw)

    def as_dict(self):
        return asdict(self)
