# Two entry points: `make figures` (the main job) and `make test`.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: figures test test-fast venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

figures: $(STAMP)
	$(PY) -m analysis.make_figures

# Notebooks run under nbval with their outputs redirected to a temporary folder, so a test run
# never rewrites the committed figures/ and results/; the folder is removed afterwards, pass or fail.
test: $(STAMP)
	out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	SHVIT_LAB_OUTPUT=$$out $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# The quick loop while editing (about 2 min on 2 cores): unit, known-answer and CLI tests, without the
# slow ones (DDP, every paper model), the ones that read committed artifacts, and the notebooks; outputs
# go to a temporary folder as in `test`.
test-fast: $(STAMP)
	out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	SHVIT_LAB_OUTPUT=$$out $(PY) -m pytest tests -m "not slow and not artifacts" -p no:cacheprovider

clean-venv:
	rm -rf $(VENV)
