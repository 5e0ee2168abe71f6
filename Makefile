# StreamDb build.  `make` builds the engine library, the daemon, the CLI and
# the demo; `make test` runs the unit, integration and CLI tests; `make run`
# starts the daemon; `make help` lists every target.  See README.md.
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
# DWARF 4: valgrind 3.19 (Debian 12) cannot read clang 14's default DWARF 5,
# and the daemon's valgrind test runs on whichever compiler built it.
OPT ?= -O2 -g -gdwarf-4
WARN := -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE
CFLAGS_ALL := $(OPT) $(WARN) -fPIC -fvisibility=hidden -pthread -Iinclude -Isrc -Iproto -MMD -MP $(CFLAGS)
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

ENGINE_SRC := $(wildcard src/engine/*.c) $(wildcard src/common/*.c) $(wildcard src/client/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
SERVER_SRC := $(wildcard src/server/*.c)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLITEST_SRC := $(wildcard tests/cli/*.c)
CLITEST_OBJ := $(CLITEST_SRC:%.c=$(BUILD)/%.o)
INTEG_SRC := $(wildcard tests/integration/*.c)
INTEG_OBJ := $(INTEG_SRC:%.c=$(BUILD)/%.o)

# The engine sees neither libuv nor cJSON (STYLE.md: no engine file includes
# uv.h); the server, client, CLI and tests do.
$(UNIT_OBJ): CFLAGS_ALL += $(CHECK_CFLAGS) $(UV_CFLAGS) $(CJSON_CFLAGS)
$(CLITEST_OBJ): CFLAGS_ALL += $(CHECK_CFLAGS) $(CJSON_CFLAGS)
$(INTEG_OBJ): CFLAGS_ALL += $(CHECK_CFLAGS) $(CJSON_CFLAGS)
$(BUILD)/src/server/%.o $(BUILD)/src/client/%.o $(BUILD)/src/cli/%.o: \
    CFLAGS_ALL += $(UV_CFLAGS) $(CJSON_CFLAGS)

.PHONY: all deps lib run demo test check test-parallel-make tsan fuzz bench bench-redis reliability sanitize valgrind coverage clean install uninstall help
all: deps lib $(BUILD)/streamdbd $(BUILD)/streamdb $(BUILD)/streamdb-demo $(BUILD)/streamdb-bench

deps:
ifneq ($(DEPS_OK),yes)
	@bash scripts/install-deps.sh
else
	@:
endif

lib: $(BUILD)/libstreamdb.a $(BUILD)/libstreamdb.so

# Every artefact (object, dependency file, library, program) is written to a
# name of its own ($@.tmp.PID) and renamed into place, so that two makes on one
# tree (`make run` and `make test` side by side) never read or leave a
# half-written file: a reader sees the old file or the new one, whole.
# tests/packaging/test_parallel_make.sh (make test-parallel-make) checks it.
# gcc names --coverage notes after the output (x.o.tmp.gcno): -dumpbase keeps
# x.gcno and x.gcda beside x.o, where scripts/coverage-summary.sh looks.
TMP = $@.tmp.$$$$
commit_tmp = mv -f $(TMP) $@
AUX_NAME = $(if $(findstring --coverage,$(OPT) $(CFLAGS)),-dumpbase $@ -dumpbase-ext .o)

# $(BUILD)/.flags holds the compiler and flags the objects were built with;
# it is rewritten only when they change (a new CC, OPT or CFLAGS, or a flag
# this Makefile adds, such as -fvisibility=hidden), and every object depends
# on it, so such a change rebuilds every object instead of mixing old and new.
FLAGS_LINE := $(CC) $(CFLAGS_ALL)
FLAGS_FILE := $(BUILD)/.flags
$(shell mkdir -p $(BUILD) && printf '%s\n' '$(subst ','"'"',$(FLAGS_LINE))' > $(FLAGS_FILE).tmp.$$$$ && \
    { cmp -s $(FLAGS_FILE).tmp.$$$$ $(FLAGS_FILE) && rm -f $(FLAGS_FILE).tmp.$$$$ || \
      mv -f $(FLAGS_FILE).tmp.$$$$ $(FLAGS_FILE); })

$(BUILD)/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(msg) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) $(AUX_NAME) -MF $(@:.o=.d).tmp.$$$$ -MT $@ -c -o $(TMP) $< && \
	    mv -f $(@:.o=.d).tmp.$$$$ $(@:.o=.d) && $(commit_tmp)

$(BUILD)/libstreamdb.a: $(ENGINE_OBJ)
	$(msg) AR $@
	$(Q)rm -f $(TMP) && ar rcs $(TMP) $^ && $(commit_tmp)

$(BUILD)/libstreamdb.so: $(ENGINE_OBJ)
	$(msg) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libstreamdb.so.$(SOMAJOR) $(LDFLAGS) -o $(TMP) $^ $(LDLIBS_ALL) && \
	    $(commit_tmp)

$(BUILD)/streamdb-demo: $(BUILD)/src/tools/demo.o $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(LDLIBS_ALL) && $(commit_tmp)

# The load generator (src/tools/bench.c): the wire codec only, from the library.
$(BUILD)/streamdb-bench: $(BUILD)/src/tools/bench.o $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(LDLIBS_ALL) && $(commit_tmp)

$(BUILD)/streamdbd: $(SERVER_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(UV_LIBS) $(CJSON_LIBS) $(LDLIBS_ALL) && $(commit_tmp)

$(BUILD)/check_all: $(UNIT_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(CHECK_LIBS) $(LDLIBS_ALL) && $(commit_tmp)

# The command-line client, and its Check runner (tests/cli: the client
# library and every CLI command against a real streamdbd).
$(BUILD)/streamdb: $(CLI_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(CJSON_LIBS) $(LDLIBS_ALL) && $(commit_tmp)

$(BUILD)/check_cli: $(CLITEST_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(CHECK_LIBS) $(CJSON_LIBS) -lutil $(LDLIBS_ALL) && $(commit_tmp)

# The daemon's integration runner (tests/integration: the real streamdbd,
# started per test, spoken to through a small test client on the codec).
$(BUILD)/check_integration: $(INTEG_OBJ) $(BUILD)/libstreamdb.a
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $(TMP) $^ $(CHECK_LIBS) $(CJSON_LIBS) $(LDLIBS_ALL) && $(commit_tmp)

$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libstreamdb.a $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(msg) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) $(BENCH_CFLAGS) -MF $@.d.tmp.$$$$ -MT $@ $(LDFLAGS) -o $(TMP) $< \
	    $(BUILD)/libstreamdb.a $(BENCH_LIBS) $(LDLIBS_ALL) -lm && mv -f $@.d.tmp.$$$$ $@.d && \
	    $(commit_tmp)

# bench_peers measures SQLite and LMDB beside the engine: only it links them,
# and only `make bench` (or building it) installs them (install-deps.sh
# --bench); `make all` and `make test` never need them.  Expanded late, after
# bench-deps has run.
$(BUILD)/bench/bench_peers: BENCH_CFLAGS = $(shell pkg-config --cflags sqlite3 lmdb 2>/dev/null)
$(BUILD)/bench/bench_peers: BENCH_LIBS = $(or $(shell pkg-config --libs sqlite3 lmdb 2>/dev/null),\
    -lsqlite3 -llmdb)
$(BUILD)/bench/bench_peers: | bench-deps
.PHONY: bench-deps
bench-deps:
	@pkg-config --exists sqlite3 lmdb 2>/dev/null || bash scripts/install-deps.sh --bench

# The reliability harnesses (docs/RELIABILITY.md): kill -9 cycles against
# streamdbd with a ledger of acknowledged writes, and bit-flip trials on
# closed and crashed database images.  Not part of `make test` (minutes, not
# seconds).  KILL9_ARGS / CORRUPT_ARGS pass options, e.g. KILL9_ARGS="--cycles 100".
RELIABILITY_BIN := $(BUILD)/reliability/kill9 $(BUILD)/reliability/corrupt
$(BUILD)/reliability/%: tests/reliability/%.c $(BUILD)/libstreamdb.a $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(msg) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -MF $@.d.tmp.$$$$ -MT $@ $(LDFLAGS) -o $(TMP) $< $(BUILD)/libstreamdb.a \
	    $(LDLIBS_ALL) && mv -f $@.d.tmp.$$$$ $@.d && $(commit_tmp)

# The unit runner with a counter of the fault backend's crash points.
$(BUILD)/reliability/check_crashcount: $(UNIT_OBJ) $(BUILD)/tests/reliability/crashcount.o \
    $(BUILD)/libstreamdb.a
	@mkdir -p $(dir $@)
	$(msg) LD $@
	$(Q)$(CC) $(LDFLAGS) -Wl,--wrap=backend_fault_new -Wl,--wrap=backend_fault_image -o $(TMP) $^ \
	    $(CHECK_LIBS) $(LDLIBS_ALL) && $(commit_tmp)

# Every part runs even when an earlier one fails; the target fails if any did.
.PHONY: reliability
reliability: deps lib $(BUILD)/streamdbd $(RELIABILITY_BIN) $(BUILD)/reliability/check_crashcount
	$(Q)rc=0; \
	echo "==> crash points swept by the unit suites"; \
	bash tests/reliability/crash_points.sh $(BUILD)/reliability/check_crashcount || rc=1; \
	echo "==> kill -9 self-test, then cycles"; \
	$(BUILD)/reliability/kill9 --selftest --daemon $(BUILD)/streamdbd || rc=1; \
	$(BUILD)/reliability/kill9 --daemon $(BUILD)/streamdbd $(KILL9_ARGS) || rc=1; \
	echo "==> corruption trials"; \
	$(BUILD)/reliability/corrupt $(CORRUPT_ARGS) || rc=1; \
	exit $$rc

# `make run` starts the daemon in the foreground on conf/streamdbd.json with
# its data in ./data (Ctrl-C stops it); `make demo DB=/tmp/x.sdb` runs the
# engine demo instead.
run: all
	@mkdir -p -m 700 data
	$(BUILD)/streamdbd --config conf/streamdbd.json

demo: all
	@mkdir -p $(dir $(DB))
	$(BUILD)/streamdb-demo $(DB)

# `make test SUITE=pathidx [TEST=name]` runs one suite or one test case (a
# tcase_create() name); a SUITE or TEST that matches nothing fails.  A test
# that cannot run here reports SKIPPED; NO_SKIP=1 (CI) makes a skip fail.
test check: deps lib $(BUILD)/check_all $(BUILD)/check_cli $(BUILD)/streamdbd $(BUILD)/streamdb \
    $(BUILD)/streamdb-bench $(BUILD)/check_integration
	$(Q)SDB_NO_SKIP='$(NO_SKIP)' MAKE='$(MAKE)' CC='$(CC)' OPT='$(OPT)' CFLAGS='$(CFLAGS)' \
	    LDFLAGS='$(LDFLAGS)' LDLIBS='$(LDLIBS)' bash scripts/run-tests.sh '$(BUILD)' '$(SUITE)' '$(TEST)'

# Two makes at once on a copy of the tree, several rounds; every artefact must
# come out whole (about 30 s; CI runs it).
test-parallel-make: deps
	$(Q)CC='$(CC)' MAKE='$(MAKE)' bash tests/packaging/test_parallel_make.sh

# ThreadSanitizer build (build-tsan) of the unit tests, run on the suites and
# test cases where threads meet (TSAN_CASES: SUITE or SUITE:TCASE), without
# forking so that TSan sees every thread; any report fails the run.
TSAN_CASES ?= review durability:concurrency durability:background
TSAN_CC ?= clang
tsan: deps
	$(Q)$(MAKE) BUILD=build-tsan CC=$(TSAN_CC) OPT="-O1 -g -fsanitize=thread" LDLIBS="-fsanitize=thread" \
	    build-tsan/check_all
	$(Q)for c in $(TSAN_CASES); do s=$${c%%:*}; t=$${c#$$s}; t=$${t#:}; \
	    echo "==> TSan: build-tsan/check_all $$s $$t"; \
	    TSAN_OPTIONS="halt_on_error=1 exitcode=66 $${TSAN_OPTIONS:-}" CK_FORK=no \
	        CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-5} build-tsan/check_all $$s $$t || exit 1; \
	done

# ---- fuzzing (clang's libFuzzer, in build-fuzz) -----------------------------
# `make fuzz` builds every fuzz/fuzz_*.c target with -fsanitize=fuzzer,address,
# undefined and runs each for FUZZ_SECONDS, starting from the committed seeds
# in fuzz/corpus/<target> (what it finds goes to build-fuzz/corpus/<target>;
# a crashing input to build-fuzz/crash-*).  It prints each target's number of
# executions.  `make fuzz-seeds` rewrites the committed seeds (gen_seeds.c).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD := build-fuzz
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIB_FLAGS := BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)"
FUZZ_LINK = $(FUZZ_CC) $(OPT_FUZZ) $(WARN) -Iinclude -Isrc -Iproto
OPT_FUZZ := -O1 -g -fsanitize=fuzzer $(FUZZ_SAN)
.PHONY: fuzz fuzz-build fuzz-seeds
fuzz-build: deps
	$(Q)$(MAKE) $(FUZZ_LIB_FLAGS) $(FUZZ_BUILD)/libstreamdb.a
	$(Q)for t in $(FUZZ_TARGETS); do \
	    $(FUZZ_LINK) -o $(FUZZ_BUILD)/$$t.tmp.$$$$ fuzz/$$t.c $(FUZZ_BUILD)/libstreamdb.a \
	        $(LDLIBS_ALL) && mv -f $(FUZZ_BUILD)/$$t.tmp.$$$$ $(FUZZ_BUILD)/$$t || exit 1; done

fuzz: fuzz-build
	$(Q)fail=0; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "==> $$t for $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/$$t.log)"; \
	    ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ \
	        $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t >$(FUZZ_BUILD)/$$t.log 2>&1 || \
	        { fail=1; tail -n 40 $(FUZZ_BUILD)/$$t.log; echo "==> $$t FAILED"; }; \
	    sed -n 's/^stat::number_of_executed_units: */    executions: /p' $(FUZZ_BUILD)/$$t.log; \
	done; exit $$fail

fuzz-seeds: deps lib
	$(Q)mkdir -p $(addprefix fuzz/corpus/,$(FUZZ_TARGETS))
	$(Q)$(CC) $(CFLAGS_ALL) -o $(BUILD)/gen_seeds fuzz/gen_seeds.c $(BUILD)/libstreamdb.a $(LDLIBS_ALL)
	$(Q)$(BUILD)/gen_seeds fuzz/corpus && du -sh fuzz/corpus

# `make bench` runs the bench programs, then the side-by-side with Redis
# (bench-redis: scripts/bench-vs-redis.sh, which installs redis-server and
# redis-tools when missing); SDB_BENCH_SHORT=1 makes the latter a quick check.
bench: deps bench-deps lib $(BUILD)/streamdbd $(BUILD)/streamdb-bench $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "==> $$b"; $$b || exit 1; done
	@echo "==> scripts/bench-vs-redis.sh $(BUILD)"
	$(Q)SDB_BENCH_SHORT='$(SDB_BENCH_SHORT)' bash scripts/bench-vs-redis.sh $(BUILD)

bench-redis: deps lib $(BUILD)/streamdbd $(BUILD)/streamdb-bench
	$(Q)SDB_BENCH_SHORT='$(SDB_BENCH_SHORT)' bash scripts/bench-vs-redis.sh $(BUILD)

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

# ---- install / uninstall --------------------------------------------------
# Everything goes under $(DESTDIR) + the directories below.  SYSCONFDIR is
# /etc whatever the PREFIX, since the unit and the docs name
# /etc/streamdb/streamdbd.json.  The installed config is conf/streamdbd.json
# with data_dir and unix_socket pointing at the service's /var/lib/streamdb
# and /run/streamdb; an existing config that differs from it is kept (like a
# dpkg conffile) and the new default goes next to it as streamdbd.json.default;
# uninstall removes the config only when it is unmodified.  Binaries, headers,
# pkg-config templates (src/*.pc.in) and man pages (docs/man/*.[1-8]) are
# taken as they exist at install time, so the CLI, the client header and the
# man pages are installed as soon as they are there.  The shared library is
# libstreamdb.so.$(VERSION) with the usual soname and development symlinks.
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR = $(SYSCONFDIR)/streamdb
INSTALL_BINS := streamdbd streamdb streamdb-bench
INSTALL_HEADERS = $(notdir $(wildcard include/*.h)) streamdb_client.h opcodes.def
MAN_PAGES = $(wildcard docs/man/*.[1-8])
PC_FILES = $(patsubst src/%.pc.in,%.pc,$(wildcard src/*.pc.in))
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
CONF_SED = sed -e 's|"data_dir": *"[^"]*"|"data_dir": "/var/lib/streamdb"|' \
    -e 's|"unix_socket": *"[^"]*"|"unix_socket": "/run/streamdb/streamdbd.sock"|' conf/streamdbd.json
install: all
	$(msg) INSTALL "$(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(CONFDIR)
	$(Q)for b in $(INSTALL_BINS); do [ ! -f $(BUILD)/$$b ] || \
	    install -m 755 $(BUILD)/$$b $(DESTDIR)$(BINDIR)/$$b || exit 1; done
	$(Q)install -m 644 $(wildcard include/*.h) proto/opcodes.def $(DESTDIR)$(INCLUDEDIR)/
	$(Q)install -m 644 $(BUILD)/libstreamdb.a $(DESTDIR)$(LIBDIR)/libstreamdb.a
	$(Q)install -m 755 $(BUILD)/libstreamdb.so $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(VERSION)
	$(Q)ln -sf libstreamdb.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(SOMAJOR)
	$(Q)ln -sf libstreamdb.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libstreamdb.so
	$(Q)for pc in $(PC_FILES); do \
	    sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	        -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	        src/$$pc.in > $(BUILD)/$$pc && \
	    install -m 644 $(BUILD)/$$pc $(DESTDIR)$(PKGCONFIGDIR)/$$pc || exit 1; done
	$(Q)for m in $(MAN_PAGES); do d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
	    install -d $$d && install -m 644 $$m $$d/ || exit 1; done
	$(Q)sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    systemd/streamdbd.service.in > $(BUILD)/streamdbd.service
	$(Q)install -m 644 $(BUILD)/streamdbd.service $(DESTDIR)$(SYSTEMDUNITDIR)/streamdbd.service
	$(Q)$(CONF_SED) > $(BUILD)/streamdbd.json
	$(Q)f=$(DESTDIR)$(CONFDIR)/streamdbd.json; \
	if [ -f $$f ] && ! cmp -s $(BUILD)/streamdbd.json $$f; then \
	    install -m 644 $(BUILD)/streamdbd.json $$f.default; \
	    echo "  kept your $$f; the new default config is $$f.default"; \
	else \
	    install -m 644 $(BUILD)/streamdbd.json $$f && rm -f $$f.default; \
	fi

uninstall:
	$(msg) RM "$(DESTDIR)$(PREFIX)"
	$(Q)rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_BINS)) \
	    $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(INSTALL_HEADERS)) \
	    $(DESTDIR)$(LIBDIR)/libstreamdb.a $(DESTDIR)$(LIBDIR)/libstreamdb.so \
	    $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libstreamdb.so.$(VERSION) \
	    $(addprefix $(DESTDIR)$(PKGCONFIGDIR)/,$(PC_FILES)) \
	    $(DESTDIR)$(MANDIR)/man1/streamdb.1 $(DESTDIR)$(MANDIR)/man8/streamdbd.8 \
	    $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/streamdbd.service $(DESTDIR)$(CONFDIR)/streamdbd.json.default
	$(Q)mkdir -p $(BUILD) && $(CONF_SED) > $(BUILD)/streamdbd.json
	$(Q)f=$(DESTDIR)$(CONFDIR)/streamdbd.json; \
	if [ -f $$f ]; then \
	    if cmp -s $(BUILD)/streamdbd.json $$f; then rm -f $$f; \
	    else echo "  kept $$f: it differs from the default (remove it by hand)"; fi; \
	fi; \
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true

clean:
	rm -rf build build-san build-cov build-clang build-tsan build-fuzz

help:
	@echo "StreamDb $(VERSION) -- make targets:"
	@echo "  all (default)  build $(BUILD)/libstreamdb.{a,so}, streamdbd, streamdb, streamdb-bench, streamdb-demo"
	@echo "  run            build and start streamdbd on conf/streamdbd.json (data in ./data)"
	@echo "  demo           build and run the engine demo on DB=$(DB)"
	@echo "  test, check    build and run the unit and integration tests (SUITE=name [TEST=tcase] for one;"
	@echo "                 NO_SKIP=1: a skipped check fails)"
	@echo "  test-parallel-make  two makes at once on a copy of the tree: no broken artefact"
	@echo "  tsan           the concurrency tests under ThreadSanitizer (build-tsan)"
	@echo "  fuzz           libFuzzer targets fuzz/fuzz_*.c (clang) for FUZZ_SECONDS (default 30) each"
	@echo "  bench          build and run tests/bench/*.c (installs SQLite and LMDB for bench_peers), then bench-redis"
	@echo "  bench-redis    streamdb-bench vs redis-benchmark, side by side (SDB_BENCH_SHORT=1: quick)"
	@echo "  reliability    kill -9 cycles and bit-flip trials (docs/RELIABILITY.md; minutes)"
	@echo "  sanitize       run the tests under ASan+UBSan (build dir build-san)"
	@echo "  valgrind       run the tests under valgrind (no fork)"
	@echo "  coverage       run the tests with gcov and print line coverage (build-cov)"
	@echo "  install        install binaries, libraries, headers, pkg-config file, man pages,"
	@echo "                 systemd unit and config into DESTDIR+PREFIX ($(PREFIX)), DESTDIR+SYSCONFDIR"
	@echo "  uninstall      remove what install installed (keeps a modified config)"
	@echo "  deps           install missing build dependencies (scripts/install-deps.sh)"
	@echo "  clean          remove build, build-san, build-cov, build-clang, build-tsan, build-fuzz"
	@echo "Variables: V=1 (show commands), CFLAGS, LDFLAGS, LDLIBS (added), OPT (default $(OPT)),"
	@echo "  CC, BUILD, PREFIX, LIBDIR, INCLUDEDIR, DESTDIR, DB,"
	@echo "  BINDIR, MANDIR, SYSCONFDIR (default /etc), SYSTEMDUNITDIR."

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
endif
