# make test: create .venv if needed, install tinyevo with its test extras, run the tests.
# make demo: the main job on built-in data.
# Installs are reproducible: every package (pip and setuptools included) comes at the exact version in
# constraints.txt. `make lock` refreshes that file from the newest releases pyproject.toml allows.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed-test
LOCK := constraints.txt
LOCK_VENV := .lock-venv
#: Test processes (pytest-xdist); auto: one per core. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto

.PHONY: test demo install lock clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(LOCK) pip setuptools
	$(PIP) install -c $(LOCK) --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

demo: $(STAMP)
	$(PY) -m tinyevo.demo

# Resolve pyproject.toml's ranges afresh in a throw-away venv and write every installed version to the
# lock. Torch's local build tag (+cpu) is dropped so the same lock also takes a CUDA build of 2.13.0.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip -q --disable-pip-version-check install --upgrade pip setuptools
	$(LOCK_VENV)/bin/python -m pip -q --disable-pip-version-check install -e ".[test]"
	{ echo "# Exact versions for make install/test/demo. Refresh: make lock"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | sed -e 's/+cpu$$//'; } > $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) build *.egg-info .pytest_cache
