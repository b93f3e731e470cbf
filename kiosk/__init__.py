"""The unmanned library kiosk: domain core, store and composition root."""

__version__ = "0.1.0"
