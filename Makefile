# StreamDb build.  `make` builds the engine library and the demo; `make test`
# runs every unit test; `make run` starts the demo (the daemon later); `make
# help` lists every target.  See README.md.
#
# Build dependencies are found with pkg-config.  When `pkg-config --exists
# $(PKGS)` fails, any goal that needs them first runs scripts/install-deps.sh
# and then runs make again with the same goals, so that every pkg-config query
# below is evaluated afresh.  Only the engine library is linked into
# libstreamdb (zlib + pthread); libuv and cJSON are for the daemon.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CC ?= cc
PKGS := libuv libcjson zlib check
OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE
CFLAGS_ALL := $(OPT) $(WARN) -fPIC -pthread -Iinclude -Isrc -Iproto -MMD -MP $(CFLAGS)
LDLIBS_ALL := -pthread -lz $(LDLIBS)
BUILD ?= build
DB ?= data/demo.sdb
VERSION := $(shell sed -n 's/.*SDB_VERSION_STRING *"\(.*\)".*/\1/p' include/streamdb.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(V),1)
Q :=
msg = @:
else
Q := @
msg = @printf '  %-7s %s\n'
MAKEFLAGS += --no-print-directory
endif

DEPS_OK := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)

# Goals that work without the build dependencies; every other goal needs them.
NODEPS_GOALS := help clean uninstall deps
GOALS := $(or $(MAKECMDGOALS),all)
ifneq ($(DEPS_OK),yes)
ifneq ($(filter-out $(NODEPS_GOALS),$(GOALS)),)
MISSING := $(strip $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(p) 2>/dev/null && echo y),,$(p))))
ifeq ($(SDB_DEPS_TRIED),1)
$(error pkg-config still cannot find: $(MISSING) (after scripts/install-deps.sh); \
install them by hand, see README.md "Dependencies")
endif
BOOTSTRAP := yes
endif
endif

ifeq ($(BOOTSTRAP),yes)
# ---- Bootstrap: install the dependencies, then run make again -------------
.NOTPARALLEL:
.PHONY: bootstrap-deps
$(GOALS): bootstrap-deps
	@:
bootstrap-deps:
	@echo "==> missing build dependencies (pkg-config: $(MISSING)): running scripts/install-deps.sh"
	@bash scripts/install-deps.sh
	@$(MAKE) SDB_DEPS_TRIED=1 $(MAKECMDGOALS)

else
# ---- Normal build (every rule and target goes in this section) ------------
UV_CFLAGS := $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS := $(shell pkg-config --libs libuv 2>/dev/null)
CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS := $(shell pkg-config --libs libcjson 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

ENGINE_SRC := $(wildcard src/engine/*.c) $(wildcard src/common/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
SERVER_SRC := $(wildcard src/server/*.c)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

# The engine sees neither libuv nor cJSON (STYLE.md: no engine file includes
# uv.h); the server, client, CLI and tests do.
$(UNIT_OBJ): CFLAGS_ALL += $(CHECK_CFLAGS) $(UV_CFLAGS) $(CJSON_CFLAGS)
$(BUILD)/src/server/%.o $(BUILD)/src/client/%.o $(BUILD)/src/cli/%.o: \
    CFLAGS_ALL += $(UV_CFLAGS) $(CJSON_CFLAGS)

.PHONY: all deps lib run demo test check bench sanitize valgrind coverage clean install uninstall help
all: deps lib $(BUILD)/streamdbd $(BUILD)/streamdb-demo

deps:
ifneq ($(DEPS_OK),yes)
	@bash scripts/install-deps.sh
else
	@:
endif

lib: $(BUILD)/libstreamdb.a $(BUILD)/libstreamdb.so

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(msg) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libstreamdb.a: $(ENGINE_OBJ)
	$(msg) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libstreamdb.so: $(ENGINE_OBJ)
	$(msg) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libstreamdb.so.$(SOMAJOR) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/streamdb-demo: $(BUILD)/src/tools/demo.o $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/streamdbd: $(SERVER_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(UV_LIBS) $(CJSON_LIBS) $(LDLIBS_ALL)

$(BUILD)/check_all: $(UNIT_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS_ALL)

$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libstreamdb.a
	@mkdir -p $(dir $@)
	$(msg) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $@ $< $(BUILD)/libstreamdb.a $(LDLIBS_ALL) -lm

# `make run` starts the daemon in the foreground on conf/streamdbd.json with
# its data in ./data (Ctrl-C stops it); `make demo DB=/tmp/x.sdb` runs the
# engine demo instead.
run: all
	@mkdir -p data
	$(BUILD)/streamdbd --config conf/streamdbd.json

demo: all
	@mkdir -p $(dir $(DB))
	$(BUILD)/streamdb-demo $(DB)

# `make test SUITE=pathidx [TEST=name]` runs one suite or one test.
test check: deps lib $(BUILD)/check_all
	$(strip $(BUILD)/check_all $(SUITE) $(TEST))

bench: deps lib $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "==> $$b"; $$b || exit 1; done

# ASan + UBSan build of the whole suite in build-san.  Check's per-test
# timeouts are stretched because instrumented code runs slower.
sanitize:
	@echo "==> ASan+UBSan build and test in build-san"
	$(Q)ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} \
	    UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	    CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-5} \
	    $(MAKE) BUILD=build-san OPT="-O1 -g $(SAN_FLAGS)" LDLIBS="$(SAN_FLAGS)" test

valgrind: deps lib $(BUILD)/check_all
	@command -v valgrind >/dev/null 2>&1 || bash scripts/install-deps.sh valgrind
	CK_FORK=no valgrind --error-exitcode=1 --leak-check=full $(strip $(BUILD)/check_all $(SUITE) $(TEST))

# gcov build of the suite in build-cov, then a per-file line coverage summary
# of src/ (lcov when installed, else plain gcov).
coverage:
	@echo "==> coverage build and test in build-cov"
	$(Q)if [ -d build-cov ]; then find build-cov -name '*.gcda' -delete; fi
	$(Q)$(MAKE) BUILD=build-cov OPT="-O0 -g --coverage" LDLIBS="--coverage" test
	$(Q)bash scripts/coverage-summary.sh build-cov

# The installed shared library is libstreamdb.so.$(VERSION), with the usual
# soname and development symlinks.  streamdb.pc is generated for this PREFIX.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
install: lib
	$(msg) INSTALL "$(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(Q)install -m 644 include/streamdb.h $(DESTDIR)$(INCLUDEDIR)/streamdb.h
	$(Q)install -m 644 $(BUILD)/libstreamdb.a $(DESTDIR)$(LIBDIR)/libstreamdb.a
	$(Q)install -m 755 $(BUILD)/libstreamdb.so $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(VERSION)
	$(Q)ln -sf libstreamdb.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(SOMAJOR)
	$(Q)ln -sf libstreamdb.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libstreamdb.so
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    src/streamdb.pc.in > $(BUILD)/streamdb.pc
	$(Q)install -m 644 $(BUILD)/streamdb.pc $(DESTDIR)$(PKGCONFIGDIR)/streamdb.pc

uninstall:
	$(msg) RM "$(DESTDIR)$(PREFIX)"
	$(Q)rm -f $(DESTDIR)$(INCLUDEDIR)/streamdb.h $(DESTDIR)$(LIBDIR)/libstreamdb.a \
	    $(DESTDIR)$(LIBDIR)/libstreamdb.so $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(SOMAJOR) \
	    $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(VERSION) $(DESTDIR)$(PKGCONFIGDIR)/streamdb.pc

clean:
	rm -rf build build-san build-cov

help:
	@echo "StreamDb $(VERSION) -- make targets:"
	@echo "  all (default)  build $(BUILD)/libstreamdb.{a,so} and $(BUILD)/streamdb-demo"
	@echo "  run            build and start streamdbd on conf/streamdbd.json (data in ./data)"
	@echo "  demo           build and run the engine demo on DB=$(DB)"
	@echo "  test, check    build and run the unit tests (SUITE=name [TEST=name] for one)"
	@echo "  bench          build and run tests/bench/*.c"
	@echo "  sanitize       run the tests under ASan+UBSan (build dir build-san)"
	@echo "  valgrind       run the tests under valgrind (no fork)"
	@echo "  coverage       run the tests with gcov and print line coverage (build-cov)"
	@echo "  install        install library, header and streamdb.pc into DESTDIR+PREFIX ($(PREFIX))"
	@echo "  uninstall      remove what install installed"
	@echo "  deps           install missing build dependencies (scripts/install-deps.sh)"
	@echo "  clean          remove build, build-san and build-cov"
	@echo "Variables: V=1 (show commands), CFLAGS, LDFLAGS, LDLIBS (added), OPT (default $(OPT)),"
	@echo "  CC, BUILD, PREFIX, LIBDIR, INCLUDEDIR, DESTDIR, DB."

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
endif
