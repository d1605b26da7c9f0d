# Two entry points: `make figures` (the main job) and `make test`.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# TORCH=cpu installs PyTorch's CPU-only build (torch and torchvision from PyTorch's own index: no CUDA
# libraries, about 3 GB less) before the project; the default is PyPI's build, which runs on CPU and CUDA.
# The choice is made when .venv is created: `make clean-venv venv TORCH=cpu` switches an existing one.
TORCH  ?= default
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
ifeq ($(filter $(TORCH),default cpu),)
$(error TORCH must be default or cpu, not '$(TORCH)')
endif

.PHONY: figures test test-fast venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	test "$(TORCH)" = default || $(PY) -m pip install --quiet torch torchvision --index-url $(TORCH_CPU_INDEX)
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
