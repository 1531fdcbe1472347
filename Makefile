# Two commands from a fresh clone:
#   make demo   set everything up, start the embedded etcd and the shop, and drive a purchase
#   make test   set everything up and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup tools bench soak clean

demo: setup
	$(BIN)/soa demo --up

test: setup
	bash .ci/pytest-strict $(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench

# ten minutes of open-loop load with a restart every minute (SOAK_ARGS="--minutes 2")
soak: setup
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

setup: $(BIN)/.installed tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,shop]'
	touch $@

# Toolchains that come from Debian's packages. Go and Node.js ship with the machine.
tools:
	@bash .ci/ensure-tools

clean:
	rm -rf $(VENV) .soa .etcd-data
