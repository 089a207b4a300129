# Two-command set-up: `make test` and `make infer IMAGE=path/to/image.png`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export PYOPENGL_PLATFORM ?= egl

.PHONY: test infer install clean

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

infer: $(STAMP)
	@test -n "$(IMAGE)" || (echo "usage: make infer IMAGE=path/to/image.png [OUT=outputs]" >&2; exit 2)
	$(PY) infer.py "$(IMAGE)" --output "$(or $(OUT),outputs)" $(INFER_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
