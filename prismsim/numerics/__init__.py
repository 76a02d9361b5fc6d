"""Pure math of the strategies: token partitions and Segment Means, attention with a key
bias (and grouped K/V heads), rotary embeddings at global positions. Imports nothing of
prismsim."""
