"""Plain-Python reference for descriptor rings, completions and frames: what the
NIC must report for every chain the host posts, and what must reach the wire
and the receiving queue. Tests run traffic through the RTL and hold every
completion against this model.

Rules modelled (from the issue and ``rtl/queues``):
- every posted chain completes exactly once, in ring order per queue, with the
  chain's first index and descriptor count;
- a transmit chain with an empty buffer completes ZERO_LENGTH, one with a buffer
  outside its protection domain PROTECTION (the first bad descriptor decides),
  and is not sent; otherwise it completes OK with the frame's length and the
  frame, the buffers' bytes in order, goes on the wire (padded to 60 bytes);
- a received frame is steered to queue ``dst[5] % num_queues``; it takes that
  queue's oldest posted chain, fills its buffers in order and completes OK with
  its length, or TRUNCATED with the chain's capacity if it is longer; a chain
  with a bad buffer takes the frame, writes nothing and completes with the
  reason;
- frames between one transmit queue and one receive queue keep their order;
  none is lost or duplicated.
"""

from collections import deque
from dataclasses import dataclass, field

from rtl.queues.layouts import QueueKind, QueueStatus

__all__ = ["Region", "Chain", "QueueModel", "NicModel", "Mismatch"]


class Mismatch(AssertionError):
    pass


@dataclass(frozen=True)
class Region:
    addr: int
    length: int
    pd: int
    read: bool
    write: bool


@dataclass
class Chain:
    index: int
    buffers: list                       # [(addr, length)]
    status: QueueStatus = QueueStatus.OK
    cookie: object = None


@dataclass
class QueueModel:
    kind: QueueKind
    number: int
    pd: int
    chains: deque = field(default_factory=deque)
    next_index: int = 0


class NicModel:
    """One NIC's queues, regions and the frames it has sent."""

    def __init__(self, name, num_queues, regions=(), max_frame=9216):
        self.name = name
        self.num_queues = num_queues
        self.max_frame = max_frame
        self.regions = list(regions)
        self.queues = {}

    def queue(self, kind, number, pd=0):
        q = self.queues[(kind, number)] = QueueModel(QueueKind(kind), number, pd)
        return q

    def _status(self, buffers, pd, write):
        for addr, length in buffers:
            if length == 0:
                return QueueStatus.ZERO_LENGTH
            if not any(r.pd == pd and (r.write if write else r.read) and r.addr <= addr
                       and addr + length <= r.addr + r.length for r in self.regions):
                return QueueStatus.PROTECTION
        return QueueStatus.OK

    def post(self, kind, number, buffers, cookie=None):
        """Record a chain posted on a queue; returns the Chain the NIC must complete."""
        q = self.queues[(kind, number)]
        st = self._status(buffers, q.pd, write=(kind == QueueKind.RX))
        if kind == QueueKind.TX and st == QueueStatus.OK and sum(n for _, n in buffers) > self.max_frame - 4:
            st = QueueStatus.TOO_LONG       # the frame with its FCS would exceed max_frame
        c = Chain(q.next_index, list(buffers), st, cookie)
        q.next_index = (q.next_index + len(buffers)) & 0xFFFF
        q.chains.append(c)
        return c

    def complete(self, cpl):
        """Check one completion from the NIC; returns the Chain it completes."""
        kind = QueueKind(cpl["kind"])
        key = (kind, cpl["queue"])
        if key not in self.queues:
            raise Mismatch(f"{self.name}: completion for {kind.name} queue {cpl['queue']}, which was never set up")
        q = self.queues[key]
        if not q.chains:
            raise Mismatch(f"{self.name}: {kind.name} queue {q.number} completed index {cpl['index']} "
                           f"with nothing posted (duplicate?)")
        c = q.chains.popleft()
        want = {"index": c.index, "ndesc": len(c.buffers)}
        got = {"index": cpl["index"], "ndesc": cpl["ndesc"]}
        if got != want:
            raise Mismatch(f"{self.name}: {kind.name} queue {q.number}: completion {got}, expected {want}")
        capacity = sum(n for _, n in c.buffers)
        if kind == QueueKind.TX:
            want_status = c.status
            want_len = capacity if c.status == QueueStatus.OK else 0
            if (cpl["status"], cpl["len"]) != (want_status, want_len):
                raise Mismatch(f"{self.name}: TX queue {q.number} index {c.index}: status {cpl['status']!r} len "
                               f"{cpl['len']}, expected {want_status!r} len {want_len}")
        else:
            if c.status != QueueStatus.OK:
                if cpl["status"] != c.status:
                    raise Mismatch(f"{self.name}: RX queue {q.number} index {c.index}: status {cpl['status']!r}, "
                                   f"expected {c.status!r}")
            elif cpl["status"] not in (QueueStatus.OK, QueueStatus.TRUNCATED):
                raise Mismatch(f"{self.name}: RX queue {q.number} index {c.index}: status {cpl['status']!r}")
            elif cpl["len"] > capacity or (cpl["status"] == QueueStatus.TRUNCATED and cpl["len"] != capacity):
                raise Mismatch(f"{self.name}: RX queue {q.number} index {c.index}: len {cpl['len']} with status "
                               f"{cpl['status']!r} in a chain of {capacity} bytes")
        return c

    def steer(self, frame):
        """The receive queue a frame goes to."""
        return frame[5] % self.num_queues

    def outstanding(self):
        return {k: len(q.chains) for k, q in self.queues.items() if q.chains}


class Ledger:
    """Frames in flight: each sent frame must arrive exactly once, and frames
    from one source queue to one receive queue in order. Frames carry a unique
    sequence number chosen by the test."""

    def __init__(self):
        self.sent = {}          # seq -> (source key, expected bytes)
        self.last_seq = {}      # (source key, receiver queue) -> last seq delivered
        self.received = set()

    def send(self, seq, source, frame):
        if seq in self.sent:
            raise Mismatch(f"sequence number {seq} used twice by the test")
        self.sent[seq] = (source, bytes(frame))

    def receive(self, seq, rx_queue, frame, truncated_to=None):
        if seq not in self.sent:
            raise Mismatch(f"received frame with sequence {seq} that nobody sent")
        if seq in self.received:
            raise Mismatch(f"frame {seq} received twice")
        source, want = self.sent[seq]
        want = want[:truncated_to] if truncated_to is not None else want
        if bytes(frame) != want:
            n = min(len(frame), len(want))
            bad = next((i for i in range(n) if frame[i] != want[i]), n)
            raise Mismatch(f"frame {seq} from {source}: {len(frame)} bytes received, {len(want)} expected, "
                           f"first difference at byte {bad}")
        key = (source, rx_queue)
        if key in self.last_seq and self.last_seq[key] > seq:
            raise Mismatch(f"frame {seq} from {source} to RX queue {rx_queue} arrived after frame {self.last_seq[key]}")
        self.last_seq[key] = seq
        self.received.add(seq)

    def missing(self):
        return sorted(set(self.sent) - self.received)


__all__ += ["Ledger"]
