"""Sync: signed, encrypted bundles, the coordinator hub and transports (``wardcrf.sync``)."""
