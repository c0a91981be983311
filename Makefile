# kao: the two commands of the README, and their parts.
#   make demo   builds kao and runs it on a real video with a client watching
#   make test   runs every check CI runs
# Everything builds with the one `release` profile: the opencv crate is slow
# to build and is built once.

CARGO ?= cargo
.PHONY: setup build demo test fmt-check clippy unit fixtures service-check fuzz-short fuzz install blazeface-models compare bench-hot

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

test: fmt-check clippy unit service-check fuzz-short

# The systemd unit as installed, checked by systemd itself: the unit in the
# repository (with ExecStart pointing at the built binary, since verify wants
# it to exist) and the files the installer stages.
service-check: build
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	sed 's|/usr/local/bin/kao|$(CURDIR)/target/release/kao|' systemd/kao.service > "$$stage/kao.service" && \
	systemd-analyze verify "$$stage/kao.service" && \
	./scripts/install-service.sh --destdir "$$stage/root" >/dev/null && \
	sed 's|/usr/local/bin/kao|'"$$stage/root"'/usr/local/bin/kao|' "$$stage/root/etc/systemd/system/kao.service" > "$$stage/installed.service" && \
	systemd-analyze verify "$$stage/installed.service" && \
	systemd-analyze security --offline=yes --threshold=20 "$$stage/kao.service" | tail -1

# Fuzzing with libFuzzer (cargo-fuzz) on stable Rust: no sanitizer
# (-s none), since the sanitizer runtimes need nightly and the parsers are
# safe Rust; libFuzzer's coverage guidance works without one. The short
# pass of `make test` reads fuzz/seeds and fuzz/corpus and writes what it
# finds to a scratch folder; `make fuzz` runs longer and merges new finds
# into fuzz/corpus (commit them). `cargo test` replays both folders.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = protocol config
FUZZ_ARGS = -max_len=8192 -max_total_time=$(FUZZ_SECONDS)
FUZZ_BIN = target/x86_64-unknown-linux-gnu/release
fuzz-short: setup
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && cd fuzz && \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p "$$scratch/$$t" && \
	  $(CARGO) fuzz run --release -s none $$t "$$scratch/$$t" seeds/$$t corpus/$$t -- $(FUZZ_ARGS) || exit 1; \
	done

fuzz: FUZZ_SECONDS = 600
fuzz: setup
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && cd fuzz && \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p "$$scratch/$$t" && \
	  $(CARGO) fuzz run --release -s none $$t "$$scratch/$$t" seeds/$$t corpus/$$t -- $(FUZZ_ARGS) || exit 1; \
	  $(FUZZ_BIN)/$$t -merge=1 -max_len=512 corpus/$$t "$$scratch/$$t"; \
	done

# Installs the service (as root): binary, models, ONNX Runtime, /etc/kao,
# the unit and the `kao` user. See docs/SERVICE.md.
install: build
	./scripts/install-service.sh

# Regenerates tests/fixtures/{mtcnn,blazeface}_reference.json with the
# reference implementations (Python, in private venvs under .cache/).
fixtures: setup
	./scripts/reference/make_fixtures.sh
	./scripts/reference/make_blazeface_fixtures.sh

# Rebuilds models/blazeface/*.onnx from the TFLite originals and checks them
# against their manifests (the files are committed; this shows they can be).
blazeface-models:
	./scripts/models/build-blazeface.sh

# kao against the reference Python MTCNN on the same 100 video frames:
# detections must agree; prints both frames/s and their ratio. Not part of
# `make test` (timings are reported, never asserted).
compare: build
	./scripts/compare-reference.sh

# Micro-benchmarks of the hot functions (resize/normalise, crops, NMS,
# P-Net decoding). The bench profile is the release profile.
bench-hot: setup
	$(CARGO) bench --locked --bench hot
