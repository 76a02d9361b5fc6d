"""The real-network testbed: one network namespace per device joined through a router
(``network``: veth, tbf), the delay line in user space (``delay_line``), one GLOO worker
process per device (``worker``) and what starts them and collects their timings
(``runner``)."""
