# Makefile: the README's two commands. `make run` builds and starts jobqd on the example
# config; `make test` builds and runs every test. Both install missing Debian packages first:
# DEBS, what building and running need; TEST_DEBS, what only the tests add.
DEBS := build-essential cmake pkg-config libuv1-dev libnng-dev libsqlite3-dev libcmocka-dev \
        libjansson-dev libinih-dev tzdata libmicrohttpd-dev libpq-dev
# npm (tests/it_http_api.sh installs the OpenAPI validator with it): Debian's, unless the
# installed node brings its own (NodeSource's nodejs provides npm and conflicts with Debian's).
NPM_DEB := $(shell command -v npm >/dev/null 2>&1 || echo npm)
TEST_DEBS := nng-utils sqlite3 valgrind procps jq curl openssl prometheus chromium bsdutils \
        util-linux clang libclang-rt-dev postgresql python3 nodejs $(NPM_DEB)
BUILD ?= build
CMAKE_FLAGS ?= -DJOBQ_WERROR=ON
# The sanitizer build: its own directory; the fuzz targets are ASan builds already, so they
# run once, in the plain pass.
ASAN_BUILD ?= build-asan
ASAN_FLAGS ?= -DJOBQ_WERROR=ON -DJOBQ_SANITIZE='address;undefined' -DCMAKE_BUILD_TYPE=Debug \
              -DJOBQ_FUZZ=OFF
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test-deps build run test test-plain test-sanitize test-valgrind bench clean

all: build

# install_debs: installs those of the named Debian packages that are missing.
define install_debs
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_debs,$(DEBS))

test-deps: deps
	$(call install_debs,$(TEST_DEBS))

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$$(nproc)

# As root, jobqd needs an account to switch to: the example names jobq, created here when
# missing (a system account without a shell), and var/ is its. As anyone else, jobqd runs as
# that user, on a copy of the example without the user line.
run: build
	mkdir -p var
	@if [ "$$(id -u)" = 0 ]; then \
	  id jobq >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin jobq; \
	  chown jobq: var; \
	  exec $(BUILD)/bin/jobqd -c deploy/jobq.conf.example; \
	else \
	  sed '/^user = /d' deploy/jobq.conf.example >var/jobq.conf; \
	  exec $(BUILD)/bin/jobqd -c var/jobq.conf; \
	fi

# make test: three passes, each stopping make at its first failure: every test (unit,
# integration, fuzz); the unit and integration tests again built with AddressSanitizer and
# UndefinedBehaviorSanitizer; the integration tests that suit valgrind with jobqd under
# memcheck (ctest label valgrind).
test: test-plain test-sanitize test-valgrind

test-plain: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j2 -LE valgrind

test-sanitize: test-deps
	cmake -S . -B $(ASAN_BUILD) $(ASAN_FLAGS)
	cmake --build $(ASAN_BUILD) -j$$(nproc)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j2

test-valgrind: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j2 -L valgrind

bench: build
	$(BUILD)/bin/jobq-bench --help

clean:
	rm -rf build build-asan
