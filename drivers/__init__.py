"""Hardware: one Protocol per device kind, real adapters loaded by name, and simulated devices."""
