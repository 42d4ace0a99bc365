# Entry points for building, testing and trying ngx_http_authgear_module.
# Each target calls cargo, so cargo's environment variables apply, for example
# NGINX_SOURCE_DIR and NGINX_BUILD_DIR to build against your own nginx tree.

CARGO ?= cargo
MODULE_NAME := ngx_http_authgear_module
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BUILD_DIR := build

.PHONY: all deps build test demo lint release

all: build

# Installs the missing Debian packages and checks for cargo.
deps:
	bash scripts/install-deps.sh

# Debug build of the workspace (module, vendored nginx, stand-ins); the module
# is copied to build/ngx_http_authgear_module.so.
build:
	$(CARGO) build --workspace
	mkdir -p $(BUILD_DIR)
	cp $(TARGET_DIR)/debug/lib$(MODULE_NAME).so $(BUILD_DIR)/$(MODULE_NAME).so
	@echo "module: $(BUILD_DIR)/$(MODULE_NAME).so"

# Unit and integration tests of the module and the stand-ins. The integration
# tests load target/debug/libngx_http_authgear_module.so, which `cargo test`
# does not build for a cdylib, so `cargo build` runs first. With
# --all-targets it resolves features once for the module and the tests, so
# nginx is compiled once. The last lines printed are cargo's own test
# summaries.
test: deps
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace

# Starts the demo on 127.0.0.1 and prints curl commands to try; Ctrl-C stops it.
demo: deps
	@$(MAKE) --no-print-directory build
	bash scripts/demo.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Optimized build of the module alone, copied to
# build/release/ngx_http_authgear_module.so so that it does not replace the
# debug build's copy.
release:
	$(CARGO) build --release --package ngx-http-authgear-module
	mkdir -p $(BUILD_DIR)/release
	cp $(TARGET_DIR)/release/lib$(MODULE_NAME).so $(BUILD_DIR)/release/$(MODULE_NAME).so
	@echo "module: $(BUILD_DIR)/release/$(MODULE_NAME).so"

# Benchmarks the module against Authgear's auth_request recipe on 127.0.0.1
# and writes the report to target/bench/; takes 10 to 17 minutes. BENCH_SECONDS,
# BENCH_ROUNDS and the other variables that `bash bench/run.sh --help` lists
# shorten or change the run, e.g. BENCH_SECONDS=1 BENCH_ROUNDS=1 make bench.
.PHONY: bench
bench:
	bash bench/run.sh

# Builds the module against Debian's nginx 1.22.1, installing Debian's nginx
# and nginx-dev when they are missing, into
# build/debian/ngx_http_authgear_module.so. target/debian holds that build.
.PHONY: debian-build deb
debian-build: deps
	bash scripts/build-debian.sh

# Packages that module as build/debian/libnginx-mod-http-authgear_*.deb, for
# the exact nginx ABI that Debian's nginx provides. `bash scripts/check-deb.sh`
# installs, tests and purges the package.
deb: debian-build
	bash scripts/build-deb.sh

# Runs the property tests of src/properties.rs with FUZZ_CASES generated cases
# per property (default 100000) and prints the time the run took. proptest,
# its random number generators and sha2 are compiled with optimizations, which
# makes the run about four times faster than a plain debug build; the first
# run spends a minute or two compiling them.
FUZZ_CASES ?= 100000
FUZZ_OPTIMIZED := $(foreach package,proptest regex-syntax rand rand_core rand_chacha rand_xorshift sha2,--config 'profile.dev.package.$(package).opt-level=3')
.PHONY: fuzz
fuzz:
	$(CARGO) test $(FUZZ_OPTIMIZED) --lib --no-run
	@start=$$(date +%s); \
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test $(FUZZ_OPTIMIZED) --lib properties; \
	status=$$?; \
	echo "fuzz: $(FUZZ_CASES) cases per property in $$(( $$(date +%s) - start )) s"; \
	exit $$status

# Runs every integration test that works in a single nginx process with nginx
# under valgrind's memcheck (scripts/valgrind.sh), from a second build in
# target/valgrind; fails on any valgrind error. About 6 minutes on 2 cores,
# plus 2 for the first build.
.PHONY: valgrind
valgrind: deps
	bash scripts/valgrind.sh

# Runs the 5-minute soak test (scripts/soak.sh) and writes its report to
# target/soak/report.txt; SOAK_SECONDS=30 make soak runs a short one.
.PHONY: soak
soak: deps
	bash scripts/soak.sh
