"""Forewarn's forecasting library: pure pandas in, pandas out.

No database, no HTTP, no global state. Frames are long: ``unique_id, ds, y`` for daily counts.
"""
