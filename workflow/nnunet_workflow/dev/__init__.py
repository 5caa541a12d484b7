"""Development tools outside the runtime path: the demo model and data, random-weight models, benchmark helpers."""
