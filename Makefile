# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv first (torch==2.13.0 CPU first, then the project under constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# OpenMP spin-waiting makes small 2-thread CPU steps ~60x slower (ENVIRONMENT.md, trap 7).
export OMP_WAIT_POLICY ?= PASSIVE
export PIP_DISABLE_PIP_VERSION_CHECK = 1

STAMP := $(VENV)/.chemprune-installed

.PHONY: venv demo test test-all bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements/nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[interop,bench,test,reaction]"
	$(PIP) install -q -c constraints.txt --no-deps -r requirements/nodeps.txt
	$(BIN)/python -c "import torch, chemprune, onmt; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

demo: $(STAMP)
	$(BIN)/chemprune demo
	@if [ -f models/uspto50k_compact.pt ]; then \
		echo "reaction-nmt: the released USPTO-50k model (42% top-1 on the test split) on the first three"; \
		echo "test reactions; recorded products: CC(C)(C)OC(=O)NCCc1ccc(N)cc1F,"; \
		echo "COC(=O)CCC(=O)c1ccc(OC2CCCCO2)cc1O, COC(=O)c1cccc(-c2nc3cccnc3[nH]2)c1"; \
		$(BIN)/reaction-nmt predict --model models/uspto50k_compact.pt --n-best 2 \
			"CC(C)(C)OC(=O)OC(=O)OC(C)(C)C.NCCc1ccc(N)cc1F" \
			"C1=COCCC1.COC(=O)CCC(=O)c1ccc(O)cc1O" "COC(=O)c1cccc(C(=O)O)c1.Nc1cccnc1N"; \
	fi

test: $(STAMP)
	$(BIN)/ruff check chemprune reaction_nmt tests benchmarks
	$(BIN)/ruff format --check chemprune reaction_nmt tests benchmarks
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python benchmarks/schnet_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check chemprune reaction_nmt tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
