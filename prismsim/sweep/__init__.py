"""``prismsim sweep``: every point of a scenario's grid, resumable. ``needs`` (what to
trace and evaluate, torch-free), ``compute`` (tracing and evaluating one need),
``backends`` (this process, local processes, Dask), ``rows`` (the results schema),
``results`` (the resumable CSV), ``run`` (the sweep), ``adaptive_rows``, ``timeline``,
``summary``."""
