"""Notify, the asynchronous messaging hub: a persistent outbox and at-least-once delivery.

``publish`` stores the event and one delivery row per subscription (per consumer group) in the
service's SQLite database, in one transaction. A dispatcher greenlet in every Notify process
leases due deliveries, calls each subscriber's method through a soa client (a generic call by
method name), and marks them delivered or schedules a retry with backoff. A lease that runs out
(the process died mid-call) makes the delivery due again, so a restart loses nothing.
"""
