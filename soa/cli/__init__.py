"""The ``soa`` command line: a click group of thin commands that call plain functions.

Each command lives in its own module and is imported only when it runs.
"""
