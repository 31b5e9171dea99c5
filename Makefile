# Two commands work on a fresh machine: `make demo` and `make test`. Each sets up its own environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ivl3-installed

.PHONY: setup demo test test-fast test-llamafactory benchmarks clean videos

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip hatchling editables
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation -e '.[all,dev]'
	$(BIN)/ivl3 --version
	touch $(STAMP)

demo: setup
	$(BIN)/ivl3 demo

# The whole suite: core + real ms-swift end-to-end tests, then the LLaMA-Factory host in its own venv.
test: setup
	bash scripts/install_chromium.sh
	$(BIN)/pytest -p no:cacheprovider
	$(MAKE) test-llamafactory

test-fast: setup
	$(BIN)/pytest -p no:cacheprovider -m "not e2e"

test-llamafactory:
	bash scripts/setup_llamafactory_env.sh
	$(VENV)-lf/bin/pytest -p no:cacheprovider tests/lf_host

videos: setup
	$(BIN)/python -m ivl3_plugin.demo_data.generate

clean:
	rm -rf $(VENV) $(VENV)-lf ivl3-demo .pytest_cache
