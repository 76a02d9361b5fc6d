"""Cost accounting: FLOPs of traced compute steps, message sizes, units."""
