"""Measuring this host, never a strategy's own program: its speed of the moment (``gauge``
on the generic ``probe_stack``), the operator table (``operators``, ``block_probe``),
FLOP rates with k processes busy (``busy_rates``), what waking after a wait costs
(``wake``), what one GLOO message costs (``message_costs``), its CPU time as the kernel
counts it (``hoststat``); ``host_profile`` gathers them into the profile
``profile-device`` writes. ``step_times`` times a strategy's steps one by one: the
validation's not-held-out twin."""
