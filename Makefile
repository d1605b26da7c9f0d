# Two entry points: `make figures` (the main job) and `make test`.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: figures test venv clean-venv

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
# never rewrites the committed figures/ and results/.
test: $(STAMP)
	SHVIT_LAB_OUTPUT=$$(mktemp -d) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

clean-venv:
	rm -rf $(VENV)
