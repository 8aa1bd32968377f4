"""mailvoice: offline-first voice email and messaging bot."""

__version__ = "0.1.0"
