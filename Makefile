# The two set-up commands of the README. Each creates (or refreshes, when pyproject.toml changed)
# the virtual environment .venv, then runs.
#   make demo   -- the main job on the bundled MNIST subset
#   make test   -- the test suite (fast set; `make test-all` includes the slow tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test test-all venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plots,hls]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/abcn-hw flow --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) runs build *.egg-info
