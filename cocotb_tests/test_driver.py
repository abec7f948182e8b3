"""The host driver core: discovery, registers by name, the DMA self-test with
interrupts, and the errors it reports in the user's terms."""

import cocotb
import pytest

from host.driver import DriverError
from host.transport import TransportError
from rtl.regmap import DmaStatus
from sim.pcie import LinkKnobs
from sim.testbench import NicTestbench


@cocotb.test()
async def self_test_passes_at_every_size_with_interrupts(dut):
    tb = NicTestbench(dut, LinkKnobs(read_latency=40, split="random", reorder=True, seed=5))
    nic = await tb.start()
    for size in (1, 3, 64, 100, 4096, 5000, 65536):
        rd, wr = await nic.dma_self_test(size, src_offset=size % 13, dst_offset=size % 11, irq=True)
        assert rd.ok and wr.ok and rd.bytes == wr.bytes == size
    assert tb.transport.irq_count(0) == 14
    await tb.check_protocol()


@cocotb.test()
async def driver_errors_name_what_went_wrong(dut):
    tb = NicTestbench(dut)
    nic = await tb.start()
    for bad, message in ((lambda: nic.read("NO_SUCH_REG"), "no register named 'NO_SUCH_REG'"),
                         (lambda: nic.write("MAGIC", 1), "register MAGIC is const, not writable"),
                         (lambda: nic.write("SCRATCH", 1 << 32), "does not fit the 32-bit register SCRATCH"),
                         (lambda: nic.write_fields("CONTROL", NOPE=1), "has no field 'NOPE'")):
        try:
            await bad()
        except (DriverError, KeyError) as exc:
            assert message in str(exc), f"{exc!r} does not say {message!r}"
        else:
            raise AssertionError(f"no error for: {message}")
    # A failing DMA read surfaces as a DriverError carrying the NIC's status.
    tb.knobs.fault = lambda req: "ca"
    try:
        await nic.dma_self_test(256)
    except DriverError as exc:
        assert DmaStatus.CA.name in str(exc), exc
    else:
        raise AssertionError("the self-test passed over a Completer Abort")
    tb.knobs.fault = None
    # Probing for a device that is not there.
    try:
        await tb.transport.probe(0xFFFF, 0x0001)
    except TransportError as exc:
        assert "ffff:0001" in str(exc), exc
    else:
        raise AssertionError("probe found a device that does not exist")
    await tb.check_protocol()


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import config_for  # noqa: E402


@pytest.mark.parametrize("width", [128])
def test_driver(width):
    run_cocotb("cocotb_tests.test_driver", config_for(width))
