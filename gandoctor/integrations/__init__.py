"""Thin adapters over ``Doctor.step`` for training frameworks (Lightning, Accelerate, ...).

Each adapter lives in its own module and imports its framework only when used; the frameworks
are optional extras (``pip install gandoctor[lightning]``), never core requirements."""
