# The two set-up commands (README): `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first, pinned to the CPU build that lies on this kind of machine (pip's find-links);
# every later range is satisfied by it, so no dependency can pull another torch.
TORCH  := torch==2.13.0

.PHONY: demo test install install-dev lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"

$(VENV)/.cpu: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[cpu]"
	@touch $@

$(VENV)/.dev: $(VENV)/.cpu
	$(BIN)/pip install --quiet -e ".[cpu,postgres,gpt-sovits,dev]"
	@touch $@

install: $(VENV)/.cpu

install-dev: $(VENV)/.dev

## Runs the main job on the embedded defaults (SQLite + local blobs under ./data/demo).
demo: $(VENV)/.cpu
	VOICESEAL_DATA_DIR=$${VOICESEAL_DATA_DIR:-data/demo} $(BIN)/voiceseal db upgrade
	VOICESEAL_DATA_DIR=$${VOICESEAL_DATA_DIR:-data/demo} $(BIN)/voiceseal demo

## Runs the test suite on SQLite and on the PostgreSQL server at 127.0.0.1:5432 (database test).
test: $(VENV)/.dev .typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@mkdir -p data
	$(BIN)/alembic -x url=sqlite:///$(CURDIR)/data/.alembic-check.db upgrade head
	$(BIN)/alembic -x url=sqlite:///$(CURDIR)/data/.alembic-check.db check
	@rm -f data/.alembic-check.db*
	# Two workers on two cores: one thread each (OpenMP threads spinning on a busy core made
	# the small decodes up to 100x slower), and passive waiting once faiss is loaded.
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \
		$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: .typecheck
	$(BIN)/mypy

bench:
	@echo "see bench/README.md: each benchmark is a script that prints a table"

clean:
	rm -rf $(VENV) data build *.egg-info

.typecheck:
	mkdir -p .typecheck
	ln -sfn ../platform .typecheck/voiceseal
	ln -sfn ../plugins .typecheck/voiceseal_plugins
	ln -sfn ../models .typecheck/voiceseal_models
