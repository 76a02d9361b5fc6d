"""The ``prismsim`` command (click): thin commands over library functions. ``main``
(the group, entry point ``prismsim.cli.main:main``), ``common`` (options, output, input
errors), ``model`` (numerics, flops, accuracy), ``runs`` (simulate, check, sweep, plot,
plan), ``assets``, ``real`` (testbed, profile-device, validate).

Commands import their library modules when they run, so ``prismsim --help``,
``prismsim check`` and ``prismsim assets list`` never load torch."""
