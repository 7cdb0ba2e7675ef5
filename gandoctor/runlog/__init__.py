"""gandoctor's own run log: the format (schema, value encoding) and the writer; the reader is
:mod:`gandoctor.readers.runlog`."""

from __future__ import annotations

from .format import LOG_NAME, SCHEMA, VERSION, Ending, HealthyMarker, RunEnd, encode_value, round_value
from .writer import RunLogWriter

__all__ = ["LOG_NAME", "SCHEMA", "VERSION", "Ending", "HealthyMarker", "RunEnd", "RunLogWriter", "encode_value", "round_value"]
