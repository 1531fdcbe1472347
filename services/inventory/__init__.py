"""Inventory: stock per warehouse pooled into virtual inventory allocated to sales channels.

It never oversells: every move is a conditional UPDATE (``... WHERE available >= ?``) inside a
``BEGIN IMMEDIATE`` transaction, and CHECK constraints refuse negative counters, so any number
of processes sharing the service's database file serialise on the write lock.
"""
