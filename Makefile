# kao: the two commands of the README, and their parts.
#   make demo   builds kao and runs it on a real video with a client watching
#   make test   runs every check CI runs
# Everything builds with the one `release` profile: the opencv crate is slow
# to build and is built once.

CARGO ?= cargo
.PHONY: setup build demo test fmt-check clippy unit fixtures service-check fuzz-short fuzz install blazeface-models

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

# Fuzzing with libFuzzer (cargo-fuzz). The machine has stable Rust only;
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags to the stable
# compiler. No sanitizer (-s none): the targets are safe Rust, and the
# sanitizer runtimes are nightly-only. New inputs that find new paths are
# kept in fuzz/corpus/ (commit them); `cargo test` replays the corpus.
FUZZ_SECONDS ?= 60
FUZZ = cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
fuzz-short: setup
	$(FUZZ) run --release -s none protocol corpus/protocol -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192
	$(FUZZ) run --release -s none config corpus/config -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192

# Longer runs by hand: make fuzz FUZZ_SECONDS=3600
fuzz: fuzz-short

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
