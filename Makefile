# Two commands work on a fresh machine: `make demo` and `make test`. Each sets up its own environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ivl3-installed

# The only source-only packages of the dependency tree (see build-constraints.txt). Each is built in an
# isolated environment with pinned build tools; every other package must come as a wheel, so a new
# source-only dependency stops `make setup` here instead of on a user's machine.
SDISTS := rouge-score,oss2,crcmod,transformers-stream-generator
PIP_INSTALL := $(BIN)/python -m pip install --progress-bar off -c constraints.txt \
	--build-constraint build-constraints.txt --only-binary=:all: --no-binary=$(SDISTS)

.PHONY: setup demo test test-fast test-llamafactory test-tf4 benchmarks clean videos

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt build-constraints.txt
	@$(PYTHON) scripts/check_prerequisites.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off -q -c constraints.txt pip
	$(PIP_INSTALL) -e '.[all,dev]'
	$(BIN)/ivl3 --version
	touch $(STAMP)

demo: setup
	$(BIN)/ivl3 demo

# The whole suite: core + real ms-swift end-to-end tests, then the LLaMA-Factory host in its own venv.
test: setup
	@$(PYTHON) scripts/check_prerequisites.py --tests
	bash scripts/install_system_packages.sh
	$(BIN)/pytest -p no:cacheprovider
	$(MAKE) test-llamafactory
	$(MAKE) test-tf4

test-fast: setup
	$(BIN)/pytest -p no:cacheprovider -m "not e2e"

test-llamafactory:
	bash scripts/setup_llamafactory_env.sh
	$(VENV)-lf/bin/pytest -p no:cacheprovider tests/lf_host

# transformers-4.x-era loaders (LMDeploy, vLLM, the official code) read what `ivl3 checkpoint/export` writes
test-tf4: setup
	bash scripts/setup_tf4_env.sh
	$(VENV)-tf4/bin/pytest -p no:cacheprovider tests/tf4

videos: setup
	$(BIN)/python -m ivl3_plugin.demo_data.generate

clean:
	rm -rf $(VENV) $(VENV)-lf $(VENV)-tf4 ivl3-demo .pytest_cache
