# Two commands on a fresh machine:  make serve  |  make test
# Each makes a virtualenv in .venv and installs what it needs (pins in constraints.txt).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_REPOSITORY ?= models

.PHONY: serve test test-all install install-test lint clean system-test-deps lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The service alone: numpy, flask, gunicorn, onnxruntime(-gpu); no torch.
$(VENV)/.installed-serve: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

# Service + trainer (torch pinned to the local CPU build by constraints.txt) + test tools.
$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[trainer,test]'
	touch $@

install: $(VENV)/.installed-serve
install-test: $(VENV)/.installed-test system-test-deps

# Debian packages the default tests need, installed with apt-get when any is absent (CI runs as
# root on a fresh Debian machine); the tests fail, never skip, without them:
# - the browser tests (tests/service/test_upload_page.py) drive Debian's chromium through
#   Debian's chromedriver (nothing downloaded at test time);
# - tests/deploy/test_image.py builds the image from the Dockerfile and runs it
#   (deploy/podman.sh): buildah and podman with runc, catatonit for `podman run --init`,
#   debootstrap for the local base image (no container registry is reachable).
BROWSER_PACKAGES := chromium chromium-driver
CONTAINER_PACKAGES := buildah podman runc catatonit debootstrap containernetworking-plugins netavark
system-test-deps:
	@dpkg -s $(BROWSER_PACKAGES) $(CONTAINER_PACKAGES) >/dev/null 2>&1 \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(BROWSER_PACKAGES) $(CONTAINER_PACKAGES))

serve: install
	HOST=$(HOST) PORT=$(PORT) MODEL_REPOSITORY=$(abspath $(MODEL_REPOSITORY)) \
		$(BIN)/gunicorn -c service/gunicorn.conf.py

test: install-test
	$(BIN)/python -m pytest -q

# Slow and GPU tests too (GPU tests skip themselves without CUDA).
test-all: install-test
	$(BIN)/python -m pytest -q -m ''

lint: install-test
	$(BIN)/python -m ruff check . && $(BIN)/python -m ruff format --check .

# ---- the service image ------------------------------------------------------------------------
# The image's lock files, deploy/requirements-{gpu,cpu}.lock, with hashes (pip-compile in a
# throwaway virtualenv; resolving and hashing takes a few minutes).
LOCK_VENV ?= /tmp/collapse-lab-lock
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip-tools==7.7.0
	$(LOCK_VENV)/bin/python deploy/lock.py

clean:
	rm -rf $(VENV) build *.egg-info
