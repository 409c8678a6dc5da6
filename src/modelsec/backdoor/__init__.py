"""Architectural-backdoor analysis over a format-neutral dataflow graph.

Format adapters build a :class:`~modelsec.backdoor.graph.DataflowModel`;
:func:`~modelsec.backdoor.analysis.analyze` finds trigger-controlled switches that reach an
output; :mod:`modelsec.backdoor.findings` declares the ``MS-BD-`` threats and turns the
analysis into findings.
"""
