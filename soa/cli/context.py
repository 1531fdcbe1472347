"""What every command shares: the global options and the config, loaded once, on demand."""

import logging
import os
from dataclasses import replace
from pathlib import Path

from soa.config import load_config


class CliContext:
    def __init__(self, config_path=None, etcd_endpoints=None, verbose=0, log_format="text"):
        from .logs import setup

        self.config_path = config_path
        self.etcd_endpoints = etcd_endpoints
        self.log_format = log_format
        self.verbose = verbose
        self._config = None
        level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
        setup(level, log_format)

    @property
    def config(self):
        """The parsed soa.yaml with overrides; ``ConfigError`` (exit 2) when it is bad."""
        if self._config is None:
            config = load_config(self.config_path, self.etcd_endpoints)
            self._config = self._with_running_etcd(config)
        return self._config

    def _with_running_etcd(self, config):
        """The etcd a running ``soa up`` of this soa.yaml really uses (it records it in
        ``.soa/up.json``; it may have had to move etcd to another port), unless ``--etcd`` or
        ``SOA_ETCD_ENDPOINTS`` says otherwise."""
        if self.etcd_endpoints or os.environ.get("SOA_ETCD_ENDPOINTS"):
            return config
        source = Path(config.source)
        if not source.is_file():
            return config
        from soa.up import running

        state = running(config.root)
        if state is None or state.get("config") != str(source.resolve()):
            return config
        logging.getLogger("soa.cli").info("using the etcd of `soa up` (pid %s): %s",
                                          state["pid"], state["etcd"])
        return replace(config, etcd=replace(config.etcd, endpoints=(state["etcd"],)))
