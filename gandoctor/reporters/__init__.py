"""Renderings of a Report: each module turns the data into one output format; none prints."""
