# Makefile: the README's two commands. `make run` builds and starts jobqd on the example
# config; `make test` builds and runs every test. Both install missing Debian packages first.
DEBS := build-essential cmake pkg-config libuv1-dev libnng-dev libsqlite3-dev libcmocka-dev \
        libjansson-dev libinih-dev nng-utils sqlite3 valgrind procps jq curl openssl \
        prometheus chromium bsdutils util-linux clang libclang-rt-dev \
        tzdata
BUILD ?= build
CMAKE_FLAGS ?= -DJOBQ_WERROR=ON
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test test-sanitize bench clean

all: build

deps:
	@missing=$$(for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$$(nproc)

run: build
	mkdir -p var
	exec $(BUILD)/bin/jobqd -c deploy/jobq.conf.example

test: build
	cd $(BUILD) && ctest --output-on-failure -j2

# The same suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DJOBQ_WERROR=ON -DJOBQ_SANITIZE='address;undefined' -DCMAKE_BUILD_TYPE=Debug"

bench: build
	$(BUILD)/bin/jobq-bench --help

clean:
	rm -rf build build-asan
