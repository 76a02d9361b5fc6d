"""Numerical building blocks: partitions, Segment Means, attention with key bias."""
