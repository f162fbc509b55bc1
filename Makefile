# make run: set up and start alpha12 on the offline replay.  make test: set up and run every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean

# Reinstall only when a requirements file changed (the stamps are newer otherwise).
$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python -m streamlit run app.py

# Bytecode caching on for the tests whatever the shell says: the suite starts some forty Python
# processes (CLI runs, the headless engine, the app's server, joblib workers), and without
# cached bytecode each compiles alpha12 again (about 25 s of CPU a run on 2 cores).
test: $(VENV)/.dev
	$(BIN)/ruff check .
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

bench: $(VENV)/.dev
	$(BIN)/python -m bench

lint: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs storage.duckdb storage.duckdb.wal
