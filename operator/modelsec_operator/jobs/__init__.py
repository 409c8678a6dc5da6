"""Scan mode ``job``: each scan attempt runs as a Kubernetes Job in the operator's namespace.

- :mod:`.settings`: what every scan Job gets (image, resources, placement, deadlines),
  from ``--scan-job-settings`` (the Helm chart renders it).
- :mod:`.manifest`: the Job for one attempt, a pure function of the scan and the settings.
- :mod:`.api`: the namespaced calls (Jobs, Pods, ScanResults), off the event loop.
- :mod:`.tracker`: one polling loop that tells each waiting scan what became of its Job.
- :mod:`.runner`: queue fairly, deduplicate, create or adopt the Job, map faults to retries.
- :mod:`.worker`: ``modelsec scan-worker``, the process inside the Job.

The verdict comes back as a write-once ``ScanResult`` (see :mod:`modelsec.k8s.result`).
"""
