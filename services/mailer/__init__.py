"""Mailer: the demo's Notify subscriber (an ``EventSink``) for order events.

It subscribes itself to ``order.created`` and ``order.cancelled`` when it starts (retrying in
the background until Notify answers) and "sends a mail" per event: it records each event id
once in its own database, so repeated deliveries are harmless.
"""
