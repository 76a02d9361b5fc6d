"""What a compute step or a message costs: FLOPs of a traced step (fvcore), its operators
(``op_record``), an operator table's seconds for them (``op_table``), units and wire bytes."""
