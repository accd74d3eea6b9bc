# `make demo` and `make test` each create .venv and install what they need when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

REFERENCE_SERVER_VENV := .venv-reference-server
REFERENCE_SERVER_STAMP := $(REFERENCE_SERVER_VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

COMPAT_VENV := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo serve test typecheck lint bench bench-scale bench-server compat compat-reference compat-server compat-server-reference clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)
	$(PY) -m threadloom.demo $(ARGS)

# the server with the approval inbox, the seed's workflows and two demo reviewers
serve: $(STAMP)
	$(PY) examples/inbox/serve.py $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check threadloom tests examples compat $(wildcard bench)
	$(PY) -m mypy  # configured in pyproject.toml; its cache is .mypy_cache
	$(PY) -m pytest -q

typecheck: $(STAMP)
	$(PY) -m mypy

lint: $(STAMP)
	$(PY) -m ruff check threadloom tests examples compat $(wildcard bench)

# benchmarks run beside LangGraph, in their own venv: .venv (make test) never holds LangGraph
$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[test,bench]'
	rm -f $(BENCH_VENV)/.installed-* && touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py $(ARGS)

# growth with thread length, thread count, value and list size, beside LangGraph
bench-scale: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/scale.py --write $(ARGS)

# the reference server (`langgraph dev`), only to compare against in bench-server: its own
# venv, never .venv
$(REFERENCE_SERVER_STAMP):
	test -x $(REFERENCE_SERVER_VENV)/bin/python || $(PYTHON) -m venv $(REFERENCE_SERVER_VENV)
	$(REFERENCE_SERVER_VENV)/bin/python -m pip install -q --upgrade pip
	$(REFERENCE_SERVER_VENV)/bin/python -m pip install -q 'langgraph-cli[inmem]' langgraph-api langgraph-runtime-inmem
	touch $(REFERENCE_SERVER_STAMP)

# approval round trips over HTTP, 50 concurrent official clients, threadloom beside the
# reference server (ARGS="--url ..." for another server, "--no-reference" to skip it)
bench-server: $(STAMP) $(REFERENCE_SERVER_STAMP)
	$(PY) bench/server.py --reference-venv $(REFERENCE_SERVER_VENV) $(ARGS)

# LangGraph's own tests against threadloom, in a venv without LangGraph (see COMPAT.md)
$(COMPAT_STAMP): pyproject.toml
	test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -e '.[compat]'
	# libraries that declare a dependency on langgraph: never let pip bring it in
	$(COMPAT_VENV)/bin/python -m pip install -q --no-deps 'langchain==1.5.2' 'langchain-tests==1.1.9'
	! $(COMPAT_VENV)/bin/python -m pip show -q langgraph 2>/dev/null  # LangGraph must not be installed
	rm -f $(COMPAT_VENV)/.installed-* && touch $(COMPAT_STAMP)

compat: $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python compat/run.py --check $(ARGS)

# the same suites on the real LangGraph, in its own throwaway .venv-reference; records
# compat/reference.json (committed: CI compares against it and never installs LangGraph)
compat-reference: $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python compat/run.py --reference $(ARGS)

# the server API against the reference Agent Server: the official client's answers from
# threadloom serve compared with those recorded from `langgraph dev` (compat/server_diff.py)
compat-server: $(STAMP)
	$(PY) compat/server_diff.py $(ARGS)

# records compat/server_reference.json from the reference server (committed: CI compares
# against it and never installs the reference)
compat-server-reference: $(STAMP) $(REFERENCE_SERVER_STAMP)
	$(PY) compat/server_diff.py --reference $(ARGS)

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(BENCH_VENV) .venv-reference $(REFERENCE_SERVER_VENV)
