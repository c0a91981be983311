# kao: the two commands of the README, and their parts.
#   make demo   builds kao and runs it on a real video with a client watching
#   make test   runs every check CI runs
# Everything builds with the one `release` profile: the opencv crate is slow
# to build and is built once.

CARGO ?= cargo
.PHONY: setup build demo test fmt-check clippy unit fixtures compare bench-hot

setup:
	./scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

demo: build
	./scripts/demo.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

unit: setup
	$(CARGO) test --release --locked

test: fmt-check clippy unit

# Regenerates tests/fixtures/mtcnn_reference.json with the reference
# implementation (Python, in a private venv under .cache/).
fixtures: setup
	./scripts/reference/make_fixtures.sh

# kao against the reference Python MTCNN on the same 100 video frames:
# detections must agree; prints both frames/s and their ratio. Not part of
# `make test` (timings are reported, never asserted).
compare: build
	./scripts/compare-reference.sh

# Micro-benchmarks of the hot functions (resize/normalise, crops, NMS,
# P-Net decoding). The bench profile is the release profile.
bench-hot: setup
	$(CARGO) bench --locked --bench hot
