# Two commands work on a fresh machine: `make demo` and `make test`. Both create .venv and install
# the package with the versions pinned in constraints.txt (the ones CI and the developers test with).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Jaeger UI that build.sh embeds: jaeger-ui's release assets.tar.gz (a path or URL). Unset, build.sh
# downloads it from GitHub; machines that reach only package registries have a copy beside the clone.
JAEGER_UI_VENDOR := $(abspath $(CURDIR)/../shared/vendor/jaeger-ui-1.76.0/assets.tar.gz)
ifneq ($(wildcard $(JAEGER_UI_VENDOR)),)
export JAEGER_UI_ASSETS ?= $(JAEGER_UI_VENDOR)
endif

.PHONY: install demo test lint typecheck unit collector promtool browser bench load constraints collector-config clean
.PHONY: alertmanager stack stack-down
.PHONY: dashboards dashboards-check

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/migration_demo.py

lint: install
	$(PY) -m ruff check otel_migration tests examples benchmarks
	$(PY) -m ruff format --check otel_migration tests examples benchmarks

typecheck: install
	$(PY) -m mypy

# The real OpenTelemetry Collector and Jaeger, built from Go modules into ~/.cache/otel-migration/bin
# (about 12 minutes the first time on 2 cores; instant once cached, rebuilt only when a pin changes).
collector:
	bash collector_config/build.sh

# promtool checks and unit-tests the alert rules: Debian's `prometheus` package (needs root or sudo).
promtool:
	@command -v promtool >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@promtool --version | head -1

# Headless Chromium for the tests of what a person looks at: Debian's `chromium` (Playwright drives it
# with executable_path; it cannot download a browser of its own here).
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@chromium --version

# Alertmanager for `make stack`: Debian's `prometheus-alertmanager` (binaries prometheus-alertmanager, amtool).
alertmanager:
	@command -v amtool >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; }
	@amtool --version 2>&1 | head -1

# The collector, Jaeger with its UI, Prometheus (with the alert rules) and Alertmanager on loopback, for a
# person to open; prints the URLs. State, logs and pids in .stack/; `make stack-down` stops them.
stack: install collector promtool alertmanager
	$(PY) collector_config/stack.py up

stack-down:
	$(PYTHON) collector_config/stack.py down

unit: install
	$(PY) -m pytest

test: lint typecheck collector promtool alertmanager browser dashboards-check go-test unit

# The collector component's own Go tests (docs/fleet.md), in its module: vet, then test.
.PHONY: go-test
go-test:
	cd collector/migrationanalyticsconnector && export PATH="$$PATH:/usr/local/go/bin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false && \
		go vet ./... && go test ./...

bench: install
	$(PY) benchmarks/call_overhead.py

# The long load-and-outage run through the real collector: 300 calls/s for 60 s, collector down 30 s.
load: install collector
	$(PY) benchmarks/collector_load.py

# Regenerate the collector's LLM-cost rules after changing the price table (a test checks they match).
collector-config: install
	$(PY) -m otel_migration collector-config --output collector_config/llm-cost.yaml

# Refresh the pins after changing dependencies: installs the newest allowed versions and records them.
constraints:
	rm -rf .venv-pins && $(PYTHON) -m venv .venv-pins
	.venv-pins/bin/pip install --quiet -e '.[dev]'
	.venv-pins/bin/pip freeze --exclude-editable | grep -v '^otel-migration' > constraints.txt
	rm -rf .venv-pins

# Grafana dashboards (collector_config/dashboards/*.json), generated with grafana-foundation-sdk.
dashboards: install
	$(PY) collector_config/dashboards/generate.py

# The committed dashboards equal the generator's, and type-check against Grafana 11.6's published
# schema (npm @grafana/schema, pinned with typescript in schema-check/package-lock.json).
DASHBOARDS_TS := collector_config/dashboards/schema-check
# A copy with one panel broken (a height as a string) must fail, so the check cannot pass vacuously.
dashboards-check: install
	$(PY) collector_config/dashboards/generate.py --check --typescript $(DASHBOARDS_TS)/dashboards.gen.ts \
		--broken-typescript $(DASHBOARDS_TS)/broken.gen.ts
	cd $(DASHBOARDS_TS) && npm ci --no-audit --no-fund --silent && npx --no-install tsc --noEmit --strict -p tsconfig.json
	cd $(DASHBOARDS_TS) && ! npx --no-install tsc --noEmit --strict -p tsconfig.broken.json > broken.log \
		|| { echo "tsc accepted a broken dashboard"; exit 1; }
	grep -q "error TS2322: Type 'string' is not assignable to type 'number'" $(DASHBOARDS_TS)/broken.log

clean:
	rm -rf $(VENV) build *.egg-info
