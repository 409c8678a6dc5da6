"""Integrity of model files after the scan: are these the bytes that were scanned, and
did someone we trust sign them?

- :mod:`.evidence`: the few file contents the engine keeps for rules (signature bundles).
- :mod:`.names`: a scanned file's name inside its model, the one key every check uses.
- :mod:`.claims`: digests a remote source claimed, told apart from computed ones.
- :mod:`.signature`: OpenSSF model signing bundles verified against trust material.
- :mod:`.expected`: the files a scan recorded (JSON report, ML-BOM, ModelScan).
- :mod:`.verify`: files on disk checked against them, streaming (``modelsec verify``).
- :mod:`.cluster`: a ModelScan read through the Kubernetes API.
"""
