"""``prismsim plan``: which hardware to buy. ``spec`` (the plan file), ``search``
(deployments simulated, judged against the floor and the SLO, ranked, their Pareto
front), ``report`` (tables and figure)."""
