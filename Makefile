# Two commands for a new user: `make demo` and `make test`. Each sets itself up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo
ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-dev.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deeppot demo --out $(OUT) $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check deeppot_galpy tests benchmarks
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/plummer.py

clean:
	rm -rf $(VENV) runs .pytest_cache
