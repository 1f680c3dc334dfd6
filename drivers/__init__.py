"""Drivers: hypervisor, storage, network and cloud bursting, registered by entry point.

Hypervisor drivers: `base` (the protocol and value types, no driver library imported),
`registry` (find a driver by name, lazily), `libvirt` (QEMU/KVM and libvirt's test driver),
`xen` (Xen PV/HVM guests, also on the test driver), `xlcfg` (Xen's xl.cfg files).
"""
