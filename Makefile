# Two-command set-up: `make test` and `make infer IMAGE=path/to/image.png`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export PYOPENGL_PLATFORM ?= egl

# The Blender backend of scripts/render_dataset.py runs in its own venv (bpy needs Python 3.11 and numpy < 2).
BLENDER_PYTHON ?= python3.11
BLENDER_VENV := .venv-blender
BLENDER_STAMP := $(BLENDER_VENV)/.installed

.PHONY: test infer install clean blender-venv cuda-carry cuda-check-dry demo-install demo

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(BLENDER_STAMP): requirements-blender.txt
	rm -rf $(BLENDER_VENV)  # rebuilt whole: a half-built venv (interrupted install) must not linger
	$(BLENDER_PYTHON) -m venv $(BLENDER_VENV)
	$(BLENDER_VENV)/bin/python -m pip install -q -r requirements-blender.txt
	$(BLENDER_VENV)/bin/python -c "import bpy; print('bpy', bpy.app.version_string)"
	touch $(BLENDER_STAMP)

blender-venv: $(BLENDER_STAMP)

# Web demo (app.py) + its browser test's Python side: gradio and selenium into .venv without re-resolving the pinned
# stack (requirements-demo.txt says why); the browser itself is Debian's: apt-get install chromium chromium-driver
demo-install: $(STAMP)
	$(PY) -m pip install -q --no-deps -r requirements-demo.txt
	$(PY) -c "import gradio, selenium; print('gradio', gradio.__version__, 'selenium', selenium.__version__)"

demo: demo-install
	$(PY) app.py $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

infer: $(STAMP)
	@test -n "$(IMAGE)" || (echo "usage: make infer IMAGE=path/to/image.png [OUT=outputs]" >&2; exit 2)
	$(PY) infer.py "$(IMAGE)" --output "$(or $(OUT),outputs)" $(INFER_ARGS)

# CUDA device check (README, "Running on a CUDA GPU"): what the offline GPU machine needs, into .cuda_carry/
cuda-carry: $(STAMP)
	$(PY) scripts/cuda_carry.py

# the check's CPU dry run (same code paths, tiny sizes; tests/scripts/test_cuda_check.py runs it in CI)
cuda-check-dry: $(STAMP)
	$(PY) scripts/cuda_check.py --device cpu --quick --out outputs/cuda_check_dry

clean:
	rm -rf $(VENV) $(BLENDER_VENV) .pytest_cache
