# `make demo` and `make test` each create .venv and install what they need when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

COMPAT_VENV := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench bench-scale compat clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)
	$(PY) -m threadloom.demo $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check threadloom tests examples compat $(wildcard bench)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check threadloom tests examples compat $(wildcard bench)

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/run.py

# growth with thread length, thread count, value and list size, beside LangGraph
bench-scale: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/scale.py --write $(ARGS)

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

clean:
	rm -rf $(VENV) $(COMPAT_VENV)
