# rcache_live developer Makefile. Users install with luarocks (see README);
# this builds in place, runs the example and the specs.
#
#   make demo          install what is missing, build, run examples/quickstart.lua
#                      against a throwaway redis-server
#   make test          the same set-up, then every spec (busted)
#   make test-all      make test for each of Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT,
#                      then the totals (spec/support/test-all.sh)
#   make rock          luarocks make into build/tree and require it from there
#   make check-clang   build with clang, -Werror
#   make test-load     4 processes x LOAD_OPS mixed operations, then the same
#                      across a server restart, with a consistency check
#   make test-asan     every spec with the module built with ASan + UBSan
#   make test-valgrind the specs under valgrind (spec/support/valgrind.sh)
#   make fuzz-smoke    the libFuzzer targets, 30 s each (CI)
#   make fuzz          30 min each, both at once, then minimize the corpus
#   make bench         benchmarks against redis-benchmark and a bare hiredis loop
#                      in the same run (BENCH=--quick for a short run)
#   make test-nginx    the nginx specs: a real nginx with the lua module runs
#                      examples/nginx/ and the transport's checks over
#                      cosockets (module built for LuaJIT)
#   make bench-nginx   wrk against our nginx endpoint and the same one written
#                      with lua-resty-redis, in the same nginx
#
# Switches: LUA_VERSION=5.4 (the runtime built for and tested on: 5.1, 5.2,
# 5.3, 5.4 or luajit; built into build/<version>/), CC=cc, CFLAGS (default
# -O2 -g), WERROR=1 (0 lets packagers drop -Werror). luajit also builds the
# module nginx's lua module loads.

LUA_VERSION ?= 5.4
# LuaJIT is Debian's luajit2 (never the `luajit` package, which conflicts
# with nginx's lua module); it speaks the 5.1 API and luarocks calls it 5.1.
ifeq ($(LUA_VERSION),luajit)
LUA ?= luajit
LUA_INC ?= /usr/include/luajit-2.1
LUA_DEBS := luajit2 libluajit2-5.1-dev
ROCKS_LUA_VERSION := 5.1
else
LUA ?= lua$(LUA_VERSION)
LUA_INC ?= /usr/include/lua$(LUA_VERSION)
# Debian names the 5.1 headers liblua5.1-0-dev (liblua5.1-dev is virtual).
LUA_DEBS := lua$(LUA_VERSION) $(if $(filter 5.1,$(LUA_VERSION)),liblua5.1-0-dev,liblua$(LUA_VERSION)-dev)
ROCKS_LUA_VERSION := $(LUA_VERSION)
endif
# The runtimes make test-all goes through, in this order.
ALL_LUA_VERSIONS := 5.1 5.2 5.3 5.4 luajit
CC ?= cc
CFLAGS ?= -O2 -g
WERROR ?= 1

VERSION := $(shell sed -n 's/.*RCACHE_VERSION "\(.*\)"/\1/p' src/version.h)
ROCKSPEC := rcache-live-$(VERSION)-1.rockspec
BUILD := build/$(LUA_VERSION)
SO := $(BUILD)/rcache_live/core.so
SRC := $(wildcard src/*.c)
OBJ := $(SRC:src/%.c=$(BUILD)/obj/%.o)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes $(if $(filter 1,$(WERROR)),-Werror)
ALL_CFLAGS := $(CFLAGS) $(WARN) -std=c99 -D_GNU_SOURCE -fPIC -fvisibility=hidden -I$(LUA_INC)
LIBS := -lhiredis -lyajl

# Debian packages: to build, to run the specs and the demo.
DEBS := make gcc $(LUA_DEBS) libhiredis-dev libyajl-dev \
        lua-busted lua-cjson luarocks redis-server redis-tools
# ... and for the sanitizer, valgrind and fuzz runs.
CHECK_DEBS := clang libclang-rt-dev valgrind

export LUA_PATH := ./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;
export LUA_CPATH := ./$(BUILD)/?.so;;

BUSTED := busted --lua=$(LUA) -o spec/support/summary.lua
WITH_REDIS := spec/support/with-redis

.PHONY: all deps check-deps bench-deps nginx-deps nginx-bench-deps build build-luajit demo test test-all test-nginx bench-nginx test-load test-asan test-valgrind fuzz-smoke fuzz bench rock check-clang clean

all: build

deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root, or install:" $$missing >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: $(SO)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SO): $(OBJ) | $(BUILD)/rcache_live
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJ) $(LIBS)

$(BUILD)/obj $(BUILD)/rcache_live:
	mkdir -p $@

demo: deps build
	$(WITH_REDIS) sh -c 'REDIS_SOCKET=$$RCACHE_TEST_SOCKET $(LUA) examples/quickstart.lua'

# On the default runtime make test runs the nginx specs too (they drive a
# real nginx, whose lua module loads the LuaJIT build); on the others
# (make test-all) it runs the rest.
ifeq ($(LUA_VERSION),5.4)
TEST_EXTRAS := nginx-deps build-luajit
TEST_RUN := --run=all
endif

test: deps build $(TEST_EXTRAS)
	$(WITH_REDIS) $(BUSTED) $(TEST_RUN) spec

test-all:
	spec/support/test-all.sh $(ALL_LUA_VERSIONS)

LOAD_OPS ?= 50000
test-load: deps build
	LUA=$(LUA) spec/load/run.sh $(LOAD_OPS)

# nginx with the lua module (LuaJIT), Debian's resty.core and lua-resty-redis
# (the peer of the nginx bench), the LuaJIT headers (luajit2's: Debian's
# luajit package conflicts with the lua module) and curl for the spec's
# requests; wrk for the bench.
NGINX_DEBS := nginx libnginx-mod-http-lua lua-resty-core lua-nginx-redis \
              luajit2 libluajit2-5.1-dev curl

nginx-deps: deps
	@$(MAKE) --no-print-directory deps DEBS="$(NGINX_DEBS)"

nginx-bench-deps: nginx-deps
	@$(MAKE) --no-print-directory deps DEBS="wrk"

build-luajit:
	@$(MAKE) --no-print-directory build LUA_VERSION=luajit

test-nginx: nginx-deps build build-luajit
	$(BUSTED) --run=nginx

bench-nginx: nginx-bench-deps build build-luajit
	$(LUA) bench/nginx/bench.lua $(BENCH)

check-deps: deps
	@$(MAKE) --no-print-directory deps DEBS="$(CHECK_DEBS)"

test-asan: check-deps
	spec/support/asan.sh

test-valgrind: check-deps
	spec/support/valgrind.sh

fuzz-smoke: check-deps
	spec/fuzz/run.sh 30

fuzz: check-deps
	FUZZ_PARALLEL=1 FUZZ_MINIMIZE=1 spec/fuzz/run.sh 1800

# The pure-Lua peer (redis-lua over luasocket) and a wall clock for the bench.
BENCH_DEBS := lua-redis lua-system

bench-deps: deps
	@$(MAKE) --no-print-directory deps DEBS="$(BENCH_DEBS)"

bench: bench-deps build build/bench/hiredis_loop
	$(WITH_REDIS) $(LUA) bench/bench.lua $(BENCH)

build/bench/hiredis_loop: bench/hiredis_loop.c
	mkdir -p build/bench
	$(CC) -O2 $(WARN) -std=c99 -o $@ bench/hiredis_loop.c -lhiredis

rock: deps
	rm -rf build/tree
	luarocks --lua-version=$(ROCKS_LUA_VERSION) make --deps-mode=none --tree=build/tree $(ROCKSPEC)
	eval "$$(luarocks --lua-version=$(ROCKS_LUA_VERSION) path --tree=build/tree)" && \
	  cd / && $(LUA) -e "$$ROCK_CHECK"

# Requires the module and names the file package.cpath finds it in (by hand:
# package.searchpath is 5.2+).
define ROCK_CHECK
local r = require "rcache_live"
local found
for template in package.cpath:gmatch("[^;]+") do
  local path = template:gsub("%?", "rcache_live/core")
  local f = io.open(path)
  if f then f:close() found = found or path end
end
print("rcache_live " .. r._VERSION .. " from " .. found)
endef
export ROCK_CHECK

check-clang: check-deps
	$(MAKE) --no-print-directory CC=clang BUILD=build/clang-$(LUA_VERSION) build

clean:
	rm -rf build
