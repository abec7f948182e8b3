# Ref: PCI Express Base Specification 4.0, §7.5.1.1.3 (Command register),
# §7.5.3.4 (Device Control: Max_Payload_Size, Max_Read_Request_Size),
# §7.7.1 (MSI capability).
"""Configuration-space state that the PCIe hard IP (or the simulation model)
hands to the core, as on real endpoint IP: the core never sees config TLPs."""

from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["PcieCfgSignature"]


class PcieCfgSignature(wiring.Signature):
    """Driven by the PCIe endpoint; the core's port is ``In(PcieCfgSignature())``.

    requester_id  bus/device/function of this function, for requests and completions
    bus_master    Command register bit 2: the core may issue requests
    mps / mrrs    Device Control encodings: 128 << mps / 128 << mrrs bytes
    msi_enable    MSI capability enable
    msi_addr      MSI message address (64 bits)
    msi_data      MSI message data
    msi_mme       MSI multiple-message enable: 1 << msi_mme vectors allowed
    """

    def __init__(self):
        super().__init__({
            "requester_id": Out(16),
            "bus_master": Out(1),
            "mps": Out(3),
            "mrrs": Out(3),
            "msi_enable": Out(1),
            "msi_addr": Out(64),
            "msi_data": Out(16),
            "msi_mme": Out(3),
        })
