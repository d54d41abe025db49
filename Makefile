# The two commands (see README.md):
#   make run    install what is needed, train the baseline if there is none, start the dashboard
#   make test   install what is needed, run the test suite
#   make bench  also install the baselines and chromium, then run python -m bench
PYTHON ?= python3
PORT ?= 8501
DEBIAN_PACKAGES = dataset-fashion-mnist
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench install system-packages python-packages

run: install
	$(PYTHON) -m core bootstrap
	$(PYTHON) -m streamlit run dashboard/app.py --server.port $(PORT)

test: install
	$(PYTHON) -m pytest

bench: install
	@dpkg -s chromium >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PYTHON) -m bench $(BENCH_ARGS)

install: system-packages python-packages

# apt only when a package is missing: `apt-get update` costs a minute we need not spend.
system-packages:
	@dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES))

python-packages:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt
