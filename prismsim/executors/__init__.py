"""The executors: what runs the per-device programs. In memory (``memory``: outputs,
hence accuracy; ``exactness``: every strategy against the HF forward), tracing
(``trace``: the Workload, cached on disk by ``trace_cache``), timing each step
(``timed``) and over torch.distributed (``gloo``: the transport of real runs). They
differ only in their transport; the programs are the strategies'."""
