# Two commands matter: `make demo` (set up everything and run the chain end to end) and
# `make test` (the whole suite). Both install what is missing and are idempotent.
# All state lives under $(STATE); ports are loopback only.

STATE  ?= $(CURDIR)/.state
VENV   := $(STATE)/venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
export FEDORA_MIRROR_STATE := $(STATE)

# Debian packages the chain and its tests use (see docs/development.md).
DEB_PACKAGES := skopeo podman buildah umoci docker-registry nginx containerd docker.io \
	fuse-overlayfs uidmap postgresql rabbitmq-server wrk hyperfine openssl curl jq \
	python3-venv iproute2 procps gnupg zsh rsync bzip2 \
	flatpak dbus dbus-daemon dbus-user-session bubblewrap chromium chromium-driver gcc libc6-dev

.PHONY: all deps venv demo demo-down test test-fast lint bench clean

all: test

deps: $(STATE)/.deps-ok
$(STATE)/.deps-ok:
	@mkdir -p $(STATE)
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install $$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install: $$missing" >&2; exit 1; fi; \
		apt-get update -q >$(STATE)/apt.log 2>&1 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >>$(STATE)/apt.log 2>&1 \
		|| { tail -30 $(STATE)/apt.log >&2; exit 1; }; \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: setup.py pyproject.toml
	@mkdir -p $(STATE)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> pip install -e .[pulp,cli,amqp,test] into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[pulp,cli,amqp,test]' >$(STATE)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(STATE)/pip.log | tail -30 >&2; exit 1; }
	@touch $@

demo: deps venv
	$(PY) -m tests.harness.demo $(DEMO_ARGS)

demo-down:
	-$(PY) -m tests.harness.demo --down
	rm -rf $(STATE)/demo

test: deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not services and not clients and not pulp and not amqp" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: deps venv
	$(PY) -m benchmarks

clean:
	rm -rf $(STATE)
