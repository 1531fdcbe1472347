"""What every command shares: the global options and the config, loaded once, on demand."""

import logging

from soa.config import load_config


class CliContext:
    def __init__(self, config_path=None, etcd_endpoints=None, verbose=0, log_format="text"):
        from .logs import setup

        self.config_path = config_path
        self.etcd_endpoints = etcd_endpoints
        self.log_format = log_format
        self._config = None
        level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
        setup(level, log_format)

    @property
    def config(self):
        """The parsed soa.yaml with overrides; ``ConfigError`` (exit 2) when it is bad."""
        if self._config is None:
            self._config = load_config(self.config_path, self.etcd_endpoints)
        return self._config
