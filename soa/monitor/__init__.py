"""Alerting: rules over scraped and registry series, evaluated by ``soa monitor``.

- ``expr``: the rule language's parser (text -> a tree of ``nodes``, errors with a column);
- ``series``: the in-memory store of samples and label selectors;
- ``evaluate``: the detection functions, arithmetic, aggregation and comparisons over the store;
- ``policy``: times/percent/limit/snooze and resolution, a pure state machine;
- ``rules``: the ``alerts:`` section of soa.yaml (or ``--rules FILE``) as frozen dataclasses;
- ``state``: the alert state on disk (atomic writes);
- ``targets`` and ``scrape``: instances from the registry, their ``/metrics``, registry facts;
- ``sinks``: where notifications go (log, webhook, a soa service call);
- ``monitor``: the loop that ties them together.
"""
