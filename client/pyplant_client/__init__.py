"""pyplant_client: the thin client of the pyplantd daemon (needs only pyzmq)."""
