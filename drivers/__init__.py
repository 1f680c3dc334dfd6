"""Drivers: hypervisor, storage, network and cloud bursting, registered by entry point."""
