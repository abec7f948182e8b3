"""Every limit tried at it, just below it and just above it: frame sizes at
``max_frame`` and the minimum, rings and completion rings of two entries
wrapping many times, and several DMA operations in flight whose ends are not
DWORD-aligned. (Region ends: ``test_isolation``.)"""

import os
import random

import cocotb
import pytest

from rtl.eth.mac import MIN_FRAME
from rtl.queues.layouts import QueueKind, QueueStatus
from sim.golden import Ledger
from sim.testbench import NicTestbench
from sim.wire import eth_fcs

from .test_isolation import own_queue, pair
from .test_queues import drain, make_frame

GUARD = 0xA5


@cocotb.test()
async def frames_at_max_frame_and_the_minimum(dut):
    """Transmit: a frame of max_frame bytes with its FCS is sent, one byte more
    is TOO_LONG. Receive: max_frame is delivered, max_frame + 1 dropped as
    oversize; 64 bytes delivered, 63 dropped as a runt."""
    tb, a, b = await pair(dut)
    rng = a.rng
    mf = a.nic.build["max_frame"]
    await a.setup(tx_queues=[0], log_size=4)
    await b.setup(rx_queues=[0, 1], log_size=4)
    for q in (0, 1):
        for _ in range(6):
            await b.post_rx(q, [mf], doorbell=False)
        await b.rx[q].doorbell()
    ledger = Ledger()
    # Transmit side: the frame without FCS is max_frame - 4 bytes, then one more.
    await a.send(0, make_frame(0, 0, 0, mf - 4, rng), pieces=3, ledger=ledger, seq=0)
    await a.send(0, make_frame(1, 0, 0, mf - 3, rng), pieces=3, seq=1)
    recs = await drain(tb, (a, b), ledger)
    tx = [r["status"] for r in recs if r["kind"] == QueueKind.TX]
    assert tx == [QueueStatus.OK, QueueStatus.TOO_LONG], tx
    assert (await a.nic.counters())["TX_TOO_LONG"] == 1
    # Receive side, frames injected on B's wire with their FCS.
    cases = []
    for seq, length in ((10, mf - 4), (11, mf - 3), (12, MIN_FRAME - 4), (13, MIN_FRAME - 5)):
        f = make_frame(seq, 0, 1, length, rng)[:length]
        assert len(f) == length
        cases.append((seq, f))
        await tb.inject["b"].send(f + eth_fcs(f))
    for seq, f in cases:
        if seq in (10, 12):
            ledger.send(seq, ("inj", 0), f)
    await drain(tb, (b,), ledger)
    c = await b.nic.counters()
    assert (c["RX_FRAMES"], c["RX_DROP_OVERSIZE"], c["RX_DROP_RUNT"]) == (3, 1, 1), c
    await tb.check_protocol()


@cocotb.test()
async def two_entry_rings_and_completion_rings_wrap(dut):
    """Rings of two descriptors and completion rings of two records wrap many
    times, one chain at a time and two at once (a full ring)."""
    tb, a, b = await pair(dut)
    rng = a.rng
    for side, kind in ((a, QueueKind.TX), (b, QueueKind.RX)):
        await side.nic.register_mr(0, 0, 1 << 31)
        await own_queue(side, kind, 0, await side.nic.create_cq(3, 1), log_size=1)
    ledger = Ledger()
    seq = 0
    for rnd in range(12):
        n = 1 + rnd % 2                                   # one chain, then a full ring of two
        for _ in range(n):
            await b.post_rx(0, [1600], doorbell=False)
        await b.rx[0].doorbell()
        for _ in range(n):
            await a.send(0, make_frame(seq, 0, 0, rng.randint(60, 1500), rng), doorbell=False,
                         ledger=ledger, seq=seq)
            seq += 1
        await a.tx[0].doorbell()
        await drain(tb, (a, b), ledger)
    assert len(ledger.received) == seq == 18
    for side, reg in ((a, "TXQ0_STATE"), (b, "RXQ0_STATE")):
        st = await side.nic.read_fields(reg)
        assert st["HEAD"] == st["TAIL"] == seq, st
    await tb.check_protocol()


@cocotb.test()
async def dma_operations_in_flight_with_unaligned_ends(dut):
    """Runs of eight back-to-back DMA operations whose lengths and host
    addresses are not DWORD multiples: every write lands exactly (guard bytes
    around each untouched), and reads bring the last operation's bytes."""
    tb = NicTestbench(dut)
    nic = await tb.start()
    rng = random.Random(int(os.environ.get("PTLNIC_SEED", "1")))
    t = tb.transport
    for length, stride in ((4093, 4099), (1, 7), (63, 70), (517, 523)):
        count = 8
        src = t.alloc_dma(stride * count + 64)
        data = rng.randbytes(length)
        src.write(3 + (count - 1) * stride, data)     # the last operation's bytes
        rd = await nic.dma_run(write=False, host_addr=src.addr + 3 + (count - 1) * stride, length=length)
        assert rd.ok, rd
        dst = t.alloc_dma(stride * count + 64)
        dst.write(0, bytes([GUARD]) * dst.size)
        wr = await nic.dma_run(write=True, host_addr=dst.addr + 1, length=length, count=count, stride=stride)
        assert wr.ok and wr.done == count, wr
        for k in range(count):
            lo = 1 + k * stride
            assert dst.read(lo, length) == data, f"{length} B, operation {k}: bytes differ"
            gap_end = lo + stride if k < count - 1 else dst.size
            assert dst.read(lo + length, gap_end - lo - length) == bytes([GUARD]) * (gap_end - lo - length), \
                f"{length} B, operation {k}: wrote past its end"
        assert dst.read(0, 1) == bytes([GUARD])
        # Reads in flight together: each lands in NIC memory over the last; the last wins.
        src2 = t.alloc_dma(stride * count + 64)
        blobs = [rng.randbytes(length) for _ in range(count)]
        for k, blob in enumerate(blobs):
            src2.write(2 + k * stride, blob)
        rd = await nic.dma_run(write=False, host_addr=src2.addr + 2, length=length, count=count, stride=stride)
        assert rd.ok and rd.done == count, rd
        out = t.alloc_dma(length + 8)
        wr = await nic.dma_run(write=True, host_addr=out.addr + 3, length=length)
        assert wr.ok and out.read(3, length) == blobs[-1], f"{length} B: reads in flight mixed their bytes"
    await tb.check_protocol()


@cocotb.test()
async def frames_of_the_engine_ethertype_skip_the_queues(dut):
    """With RX_ENGINE_ETHERTYPE set, frames of that EtherType go to the engine
    port (counted; no engine yet) and never to a queue; others are delivered
    in order. Set to 0, every frame goes to the queues."""
    tb, a, b = await pair(dut)
    rng = a.rng
    await a.setup(tx_queues=[0], log_size=4)
    await b.setup(rx_queues=[0], log_size=4)
    for _ in range(8):
        await b.post_rx(0, [1600], doorbell=False)
    await b.rx[0].doorbell()
    await b.nic.write_fields("RX_ENGINE_ETHERTYPE", ETHERTYPE=0x88B6)
    ledger = Ledger()

    def other(f):
        return f[:12] + b"\x88\xb6" + f[14:]
    for s in range(8):
        f = make_frame(s, 0, 0, rng.choice((60, 61, 200, 1500)), rng)
        if s % 2:
            await a.send(0, other(f), seq=s)
        else:
            await a.send(0, f, ledger=ledger, seq=s)
    await drain(tb, (a, b), ledger)
    await tb.wait_cycles(300)
    c = await b.nic.counters()
    assert (c["RX_ENGINE_FRAMES"], c["RX_FRAMES"]) == (4, 4), c
    await b.nic.write_fields("RX_ENGINE_ETHERTYPE", ETHERTYPE=0)
    await a.send(0, other(make_frame(8, 0, 0, 300, rng)), ledger=ledger, seq=8)
    await drain(tb, (a, b), ledger)
    assert (await b.nic.counters())["RX_ENGINE_FRAMES"] == 4
    await tb.check_protocol()


# ------------------------------------------------------------------ pytest
from sim.run import run_cocotb  # noqa: E402
from .conftest import config_for  # noqa: E402

PAIR_CASES = ("frames_at_max_frame_and_the_minimum|two_entry_rings_and_completion_rings_wrap"
              "|frames_of_the_engine_ethertype_skip_the_queues")


@pytest.mark.parametrize("width", [64, 256])
def test_limits_pair(width, seed):
    run_cocotb("cocotb_tests.test_limits", config_for(width), top="ptlnic_pair", testcase=PAIR_CASES.split("|"),
               name=f"test_limits-w{width}", env={"PTLNIC_SEED": str(seed)})


@pytest.mark.parametrize("width", [64, 256])
def test_limits_dma(width, seed):
    run_cocotb("cocotb_tests.test_limits", config_for(width), testcase="dma_operations_in_flight_with_unaligned_ends",
               name=f"test_limits-dma-w{width}", env={"PTLNIC_SEED": str(seed)})
