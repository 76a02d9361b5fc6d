"""``prismsim plan``: which hardware to buy. ``file`` (the plan file), ``search``
(deployments simulated, judged against the floor and the SLO, ranked, their Pareto
front), ``report`` (tables and figure)."""
