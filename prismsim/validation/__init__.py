"""Measured against predicted: the validation file (``file``), the held-out prediction
(``predict``), the latency grid (``latency``), serving under an offered load
(``under_load``), generation's token times (``tokens``) and the one report of errors
(``report``)."""
