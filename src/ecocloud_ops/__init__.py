"""EcoCloud Ops: one console, API and CLI for the agency's cloud, network, service desk and DR."""

__version__ = "0.1.0"
