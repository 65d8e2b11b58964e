# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nanofind-installed
DEMO_OUT ?= demo-output

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch and every other pin come from constraints.txt (a newer torch pulls GBs of CUDA)
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# the main job on the bundled example micrographs, then the example scenes and their local structure,
# and the atomic columns of the bundled CeO2 example
demo: $(STAMP)
	$(BIN)/nanofind analyze --example -o $(DEMO_OUT)
	mkdir -p $(DEMO_OUT)/scenes
	@for recipe in examples/recipes/*.yaml; do \
		name=$$(basename $$recipe .yaml); \
		grep -q '^detector:' $$recipe && continue; \
		grep -q '^renderer:' $$recipe && continue; \
		$(BIN)/nanofind scene $$recipe -o $(DEMO_OUT)/scenes/$$name.extxyz --seed 0 --also prismatic --preview $(DEMO_OUT)/scenes/$$name.png || exit 1; \
	done
	$(BIN)/nanofind structure $(DEMO_OUT)/scenes/twinned_au.extxyz $(DEMO_OUT)/scenes/decahedron_au.extxyz \
		$(DEMO_OUT)/scenes/icosahedron_au.extxyz -o $(DEMO_OUT)/structure --quiet
	$(BIN)/nanofind columns src/nanofind/columns/examples/ceo2_110.tif -o $(DEMO_OUT)/columns --quiet
	$(BIN)/nanofind columns src/nanofind/columns/examples/ceo2_110.tif -o $(DEMO_OUT)/column-heights --method network --quiet
	$(BIN)/nanofind match src/nanofind/library/examples/cdte_110.tif --library src/nanofind/library/examples/library-small.h5 -o $(DEMO_OUT)/match --top 5 --quiet
	$(BIN)/nanofind match src/nanofind/library/examples/interface.tif --library src/nanofind/library/examples/library-small.h5 -o $(DEMO_OUT)/match-motifs --window 256 --top 3 --quiet
	@echo "Report: $(DEMO_OUT)/report.html (particles.csv, summary.json, overlays/); scenes in $(DEMO_OUT)/scenes/; their local structure in $(DEMO_OUT)/structure/; atomic columns of a CeO2 example in $(DEMO_OUT)/columns/ (peaks) and $(DEMO_OUT)/column-heights/ (heights and elements); structure matches of a CdTe [1 1 0] query in $(DEMO_OUT)/match/ and a motif map of an interface in $(DEMO_OUT)/match-motifs/"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; the report test will fail"
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n auto --maxprocesses 2 --durations=15

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
