"""Packet arbiter for TLP streams: merges them a whole TLP at a time."""

from ..lib.arbiter import PacketArbiter
from .tlp import TlpStream

__all__ = ["TlpArbiter"]


class TlpArbiter(PacketArbiter):
    """Round-robin arbiter over ``n`` TLP sources with no idle cycle between
    packets (:class:`~rtl.lib.arbiter.PacketArbiter`; a TLP ends at ``eop``).

    i_tlp__<k>  In(TlpStream), k = 0 .. n-1
    o_tlp       Out(TlpStream)
    hold        In(1): finish the TLP in progress, then grant nobody
    busy        Out(1): a TLP is in progress
    """

    def __init__(self, data_width, n):
        super().__init__(TlpStream(data_width), n, last=lambda p: p.eop, name_in="i_tlp", name_out="o_tlp")
