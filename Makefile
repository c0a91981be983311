# kao: the two commands of the README, and their parts.
#   make demo   builds kao and runs it on a real video with a client watching
#   make test   runs every check CI runs
# Everything builds with the one `release` profile: the opencv crate is slow
# to build and is built once.

CARGO ?= cargo
.PHONY: setup build demo test fmt-check clippy unit fixtures blazeface-models

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

# Regenerates tests/fixtures/{mtcnn,blazeface}_reference.json with the
# reference implementations (Python, in private venvs under .cache/).
fixtures: setup
	./scripts/reference/make_fixtures.sh
	./scripts/reference/make_blazeface_fixtures.sh

# Rebuilds models/blazeface/*.onnx from the TFLite originals and checks them
# against their manifests (the files are committed; this shows they can be).
blazeface-models:
	./scripts/models/build-blazeface.sh
