# The two commands (see README.md):
#   make run    install what is needed, train the baseline if there is none, start the dashboard
#   make test   install what is needed, lint (ruff), type-check (mypy), run the test suite
#   make bench  also install the baselines and load generators, then run python -m bench
#   make serve  install, train the baseline if there is none, serve the prediction API
#               with the monitor beside it (snapshots, alert rules, messages)
#   make https  like run, but over HTTPS with a self-signed certificate (phone cameras)
#   make tensorboard  TensorBoard on every version's training run (port 6006)
#   make translations  extract new dashboard strings into each language's .po, compile all
#   make image  build the container image (Dockerfile) with buildah; make image-test checks it
#   make rehearsal  the multi-machine rehearsal alone (PostgreSQL, S3 stand-in, Ray,
#               2 dashboards, 2 API servers; also part of make test)
PYTHON ?= python3
PORT ?= 8501
# chromium: the end-to-end tests' browser (Playwright cannot download one here).
# postgresql: the tests start throw-away clusters with its initdb and pg_ctl.
# fonts-lohit-deva: Devanagari, so the browser draws the Hindi dashboard (not boxes).
DEBIAN_PACKAGES = dataset-fashion-mnist chromium postgresql fonts-lohit-deva
# prometheus: the tests run promtool and a real Prometheus on deploy/prometheus's rules.
TEST_PACKAGES = prometheus
# buildah and debootstrap: make image builds the container image without Docker.
IMAGE_PACKAGES = buildah debootstrap
# wrk and hey: compiled HTTP load generators, so the client does not starve the server.
BENCH_PACKAGES = wrk hey
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: image image-test run test rehearsal bench https serve tensorboard translations install system-packages \
	python-packages dev-packages compiled-translations phone-runtime
CERTS = .streamlit/certs

run: install
	$(PYTHON) -m core bootstrap
	$(PYTHON) -m core users setup
	$(PYTHON) -m streamlit run dashboard/app.py --server.port $(PORT)

# The prediction API (TF Serving's REST protocol, /v1/predict, /metrics) on port 8500,
# and the monitor (python -m core monitor run), stopped with the API.
SERVE_PORT ?= 8500
WORKERS ?= 2
serve: install
	$(PYTHON) -m core bootstrap
	$(PYTHON) -m core monitor run & MONITOR=$$!; trap "kill $$MONITOR" EXIT INT TERM; \
		$(PYTHON) -m core serve --host 0.0.0.0 --port $(SERVE_PORT) --workers $(WORKERS)

# Phones allow the camera only over HTTPS. The certificate is made once, for this
# machine's name and LAN addresses; the phone shows a warning to accept once.
https: install
	@[ -f $(CERTS)/cert.pem ] || (mkdir -p $(CERTS) && \
		SAN="DNS:$$(hostname),DNS:localhost,IP:127.0.0.1$$(for ip in $$(hostname -I 2>/dev/null); do printf ',IP:%s' $$ip; done)" && \
		openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$$(hostname)" \
			-addext "subjectAltName=$$SAN" -keyout $(CERTS)/key.pem -out $(CERTS)/cert.pem)
	$(PYTHON) -m core bootstrap
	$(PYTHON) -m core users setup
	@echo "On the phone, open https://<one of: $$(hostname -I 2>/dev/null)>:$(PORT) and accept the certificate."
	$(PYTHON) -m streamlit run dashboard/app.py --server.port $(PORT) --server.address 0.0.0.0 \
		--server.sslCertFile $(CERTS)/cert.pem --server.sslKeyFile $(CERTS)/key.pem

# Each version's folder holds its run (N/tensorboard): the runs are named by version.
TENSORBOARD_PORT ?= 6006
tensorboard: install
	$(PYTHON) -m tensorboard.main --logdir "$${MODEL_REGISTRY_DIR:-model_registry}/$${MODEL_NAME:-classifier}" \
		--host 0.0.0.0 --port $(TENSORBOARD_PORT)

# The suite in two processes (pytest-xdist; a module's tests stay together), then the
# tests that assert a latency bound, alone. Both
# runs share the trained registries (TEST_SHARED_DIR, a temporary folder): the second does
# not train them again. mypy (single-threaded, ~30 s) runs beside the suite's start, when
# a core is otherwise idle; its verdict counts as before.
TEST_PROCESSES ?= 2
test: install dev-packages
	$(PYTHON) -m ruff check .
	@SHARED=$$(mktemp -d); TYPES=$$(mktemp); trap 'rm -rf "$$SHARED" "$$TYPES"' EXIT; \
		export TEST_SHARED_DIR=$$SHARED; \
		$(PYTHON) -m mypy > "$$TYPES" 2>&1 & MYPY=$$!; \
		$(PYTHON) -m pytest -n $(TEST_PROCESSES) --dist loadgroup -m "not serial"; \
		TESTS=$$?; wait $$MYPY; TYPED=$$?; echo "mypy:"; cat "$$TYPES"; \
		[ $$TESTS -eq 0 ] && [ $$TYPED -eq 0 ] && \
		$(PYTHON) -m pytest -m serial

# The container image (docs/deploy.md): buildah builds the Dockerfile without a daemon;
# the base is bootstrapped from Debian's archive unless BASE names one.
image:
	@dpkg -s $(IMAGE_PACKAGES) >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(IMAGE_PACKAGES))
	deploy/image/build.sh

# Inside the image: not root, no test tools, bootstrap, serve answers, dashboard healthy.
image-test: image
	$(PYTHON) deploy/image/check.py

# docs/deploy.md's topology on one machine: see tests/e2e/test_rehearsal.py.
rehearsal: install dev-packages
	$(PYTHON) -m pytest tests/e2e/test_rehearsal.py -v

bench: install dev-packages
	@dpkg -s $(BENCH_PACKAGES) >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(BENCH_PACKAGES))
	$(PYTHON) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PYTHON) -m bench $(BENCH_ARGS)

install: system-packages python-packages compiled-translations phone-runtime

# The phone app's runtime (LiteRT.js, ~19 MB, pinned and checked): fetched, not in git.
phone-runtime: python-packages
	$(PYTHON) -m core.serving.phone_runtime $(NPM_REGISTRY)

# apt only when a package is missing: `apt-get update` costs a minute we need not spend.
system-packages:
	@dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES))

python-packages:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt

# What the tests, linters and benchmarks use (pytest, Playwright, moto, ruff, mypy, ...):
# not the product's, so `make run` and a container image go without them.
dev-packages: python-packages
	@dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(TEST_PACKAGES))
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# The dashboard reads compiled catalogs (.mo); only the .po files are kept in git.
BABEL = $(PYTHON) -m babel.messages.frontend
LOCALE = dashboard/locale
compiled-translations: python-packages
	$(BABEL) -q compile -d $(LOCALE) -D dashboard

# After changing dashboard text: new strings land in every .po (translate them there;
# tests/dashboard/test_languages.py fails until each is), then all are compiled.
BABEL_KEYWORDS = --no-default-keywords -k _ -k N_ -k pN_:1c,2
translations: python-packages
	$(BABEL) -q extract -F babel.cfg $(BABEL_KEYWORDS) --no-location --sort-output \
		-o $(LOCALE)/dashboard.pot .
	$(BABEL) -q update -i $(LOCALE)/dashboard.pot -d $(LOCALE) -D dashboard --no-fuzzy-matching \
		--ignore-obsolete
	$(BABEL) -q compile -d $(LOCALE) -D dashboard
