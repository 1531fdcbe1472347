"""Observing running instances: the HTTP endpoint each one serves (``/metrics``, ``/healthz``,
``/readyz``), the sum over pre-fork workers, scraping instances found in the registry, and the
``soa top`` view built on those scrapes."""
