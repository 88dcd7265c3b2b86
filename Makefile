# Everything installs itself: system packages (as root, via apt), a venv, the project.
# Re-running is fast: each step checks what is already there.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-quick bench soak lint system-packages venv clean

system-packages:
	@scripts/ensure-system-packages

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# umockdev-wrapper simulates udev for the docking tests (hotplug of recorders);
# loop devices, FUSE mounts and the kernel underneath are real.
test: system-packages venv lint
	umockdev-wrapper $(BIN)/python -m pytest

# The edit loop: everything but the tests marked slow (daemons, kills, discs, other users).
test-quick: system-packages venv
	umockdev-wrapper $(BIN)/python -m pytest -m "not slow" -q

demo: system-packages venv
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo

bench: system-packages venv
	umockdev-wrapper $(BIN)/python -m bench

# A busy station under random faults (not part of make test): SOAK_MINUTES (default 30),
# SOAK_SEED to replay a run; the report and plots go to soak-runs/ (README, "Soak").
SOAK_STAMP := $(VENV)/.soak-installed
$(SOAK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,soak]'
	@touch $(SOAK_STAMP)

soak: system-packages venv $(SOAK_STAMP)
	umockdev-wrapper $(BIN)/python -m soak

clean:
	rm -rf $(VENV) .pytest_cache
