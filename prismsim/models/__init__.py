"""Models as strategies see them: ``stack`` (the uniform block stack), ``load`` (HF
model, built-in name, hub name or directory -> stack), family adapters (``vision``,
``text``), the torch-free ``catalog`` of built-in names, and the built-in weights."""
