"""The modelsec validating admission webhook (aiohttp): ``modelsec webhook``.

Layout, one job per module:

- :mod:`.command` the command line; :mod:`.server` wiring and lifecycle;
- :mod:`.admission` answering one AdmissionReview (the hot path);
- :mod:`.decision` references x groups x verdicts -> allow / deny / warn / audit (pure);
- :mod:`.messages` what people read, within the API server's limits;
- :mod:`.view`, :mod:`.informer`, :mod:`.matching` the in-memory view kept by list+watch;
- :mod:`.sideeffects` ModelScans and Events created in the background;
- :mod:`.tls` serving certificates (reload, bootstrap, caBundle);
- :mod:`.manifest` the ValidatingWebhookConfiguration;
- :mod:`.kubeapi` the few API calls, over aiohttp; :mod:`.metrics` Prometheus.

Model references themselves are found by :mod:`modelsec.references`.
"""
