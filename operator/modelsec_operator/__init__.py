"""The modelsec operator: kopf handlers that keep ModelSources and SecurityGroups
validated and ModelScans judged.

Run it with ``modelsec operator`` (or ``python -m modelsec_operator``); see
``docs/operator.md``. The folder ``operator/`` holding this package has no
``__init__.py`` on purpose: an importable top-level ``operator`` would shadow the
standard library.
"""
