# localcap — top-level GNU Makefile.
#
#   make                build every binary into build/bin/
#   make deps           install Debian build/test packages, build mbedTLS 3.6 once
#   make check          build and run every test (unit + integration)
#   make SANITIZE=1 …   the same with ASan + UBSan, built in build/sanitize/
#   make fuzz           build and run the libFuzzer harnesses for FUZZ_SECONDS each
#   make demo           the README's first command
#   make install DESTDIR= PREFIX=/usr/local
#
# On macOS (uname -s Darwin) the same `make` builds what runs there:
# proxyd, redirectord with its macOS backend, localcapctl and the
# extension's core (libmxcore.a), with ld64's flags; `make TARGET_OS=darwin
# -n` shows that build on Linux (test/integration/darwin_make.sh).
#
# Layout: common/ (shared by every process) and proto/ (generated with protoc-c
# into build/gen/) form libcommon.a.  Each daemon directory D/ holds D.c (main)
# and its modules, which form libD.a so that unit tests can link them.

comma := ,

# The system built for: this one, or TARGET_OS=darwin on Linux for a dry
# check of macOS's rules (make -n), in a tree of its own.
HOST_OS   := $(shell uname -s | tr A-Z a-z)
TARGET_OS ?= $(HOST_OS)
override TARGET_OS := $(shell echo '$(TARGET_OS)' | tr A-Z a-z)
DARWIN    := $(filter darwin,$(TARGET_OS))
ifneq ($(TARGET_OS),$(HOST_OS))
# (whatever BUILD the environment gives: this tree must not mix with it)
override BUILD := build/$(TARGET_OS)
endif

# A sanitizer build lives beside the plain one, so switching costs nothing.
ifeq ($(SANITIZE),1)
BUILD   ?= build/sanitize
else
BUILD   ?= build
endif
BIN     := $(BUILD)/bin
OBJ     := $(BUILD)/obj
GEN     := $(BUILD)/gen
TESTBIN := $(BUILD)/test
PREFIX  ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 30

CC      ?= cc

# mbedTLS 3.6 built by scripts/build-mbedtls.sh when the system lacks it.
# (make 4.3's $(shell) does not see exported variables: pass the path inline.)
MBEDTLS_PREFIX := $(CURDIR)/build/deps/mbedtls
PKG_CONFIG := PKG_CONFIG_PATH=$(MBEDTLS_PREFIX)/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH)) pkg-config

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# --- flags -----------------------------------------------------------------

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
	-Wstrict-prototypes -Wcast-qual -Wpointer-arith -Wformat=2 \
	-Wundef -Wvla -Wnull-dereference -Wimplicit-fallthrough

CPPFLAGS += -D_GNU_SOURCE -DLOCALCAP_VERSION='"$(VERSION)"' \
	-I. -Icommon -I$(GEN) -MMD -MP
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARNINGS) -fPIE -fstack-protector-strong \
	-fno-strict-aliasing
LDFLAGS  += -pie -Wl,-z,relro,-z,now -Wl,--as-needed

ifeq ($(SANITIZE),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
else
CPPFLAGS += -D_FORTIFY_SOURCE=2
endif

# Every library comes through pkg-config.  mbedTLS is linked statically.
COMMON_PKGS := libprotobuf-c libcap libseccomp
COMMON_LIBS  = $(shell $(PKG_CONFIG) --libs $(COMMON_PKGS)) -lev
MBEDTLS_LIBS = -Wl,-Bstatic $(shell $(PKG_CONFIG) --libs-only-l --static mbedtls mbedx509 mbedcrypto) -Wl,-Bdynamic \
	$(shell $(PKG_CONFIG) --libs-only-L mbedtls)
CMOCKA_LIBS  = $(shell $(PKG_CONFIG) --libs cmocka)
redirectord_LIBS = $(shell $(PKG_CONFIG) --libs libmnl)
DEPS_NEEDED := 'mbedtls >= 3.6' libprotobuf-c libcap libseccomp cmocka libbpf \
	libmnl sqlite3 libnghttp2

# --- macOS: clang and ld64 --------------------------------------------------------
# ld64 takes none of GNU ld's -z relro/now, --as-needed, -Bstatic/-Bdynamic
# or -pie (PIE is its default); -dead_strip_dylibs is its --as-needed.
# mbedTLS is built static-only (scripts/build-mbedtls.sh), so -l finds the
# archives.  No libcap, libseccomp, libbpf, libmnl: the seam's POSIX side
# (common/plat.h), Seatbelt and the macOS backend stand in.  Security and
# CoreFoundation: the peer's code signature (common/ipc_darwin.c).
# Homebrew's libev has no pkg-config file: its prefix is searched.
ifneq ($(DARWIN),)
CPPFLAGS    := $(filter-out -D_GNU_SOURCE,$(CPPFLAGS)) -D_DARWIN_C_SOURCE \
	-DLOCALCAP_SANDBOX_DIR='"$(PREFIX)/share/localcap/sandbox"'
LDFLAGS     := $(filter-out -pie -Wl$(comma)-z$(comma)relro$(comma)-z$(comma)now \
	-Wl$(comma)--as-needed,$(LDFLAGS)) -Wl,-dead_strip_dylibs
BREW_PREFIX ?= $(shell brew --prefix 2>/dev/null)
ifneq ($(BREW_PREFIX),)
CPPFLAGS    += -I$(BREW_PREFIX)/include
LDFLAGS     += -L$(BREW_PREFIX)/lib
endif
COMMON_PKGS := libprotobuf-c
COMMON_LIBS  = $(shell $(PKG_CONFIG) --libs $(COMMON_PKGS)) -lev \
	-framework Security -framework CoreFoundation
MBEDTLS_LIBS = $(shell $(PKG_CONFIG) --libs --static mbedtls mbedx509 mbedcrypto)
redirectord_LIBS =
DEPS_NEEDED := 'mbedtls >= 3.6' libprotobuf-c sqlite3 libnghttp2
endif
CPPFLAGS    += $(shell $(PKG_CONFIG) --cflags $(COMMON_PKGS) mbedtls 2>/dev/null)

netstackd_LIBS   =
proxyd_LIBS      = $(MBEDTLS_LIBS) $(shell $(PKG_CONFIG) --libs sqlite3 libnghttp2)
# (mbedcrypto: the SHA-1 that names a certificate in macOS's keychain)
localcapctl_LIBS = $(shell $(PKG_CONFIG) --libs sqlite3) $(MBEDTLS_LIBS)
webd_LIBS        = $(shell $(PKG_CONFIG) --libs sqlite3)

# Fail early and clearly on a machine without the dependencies.
ifeq ($(filter deps check demo clean distclean,$(MAKECMDGOALS)),)
ifneq ($(shell $(PKG_CONFIG) --exists $(DEPS_NEEDED) && echo ok),ok)
$(error build dependencies missing: run 'make deps' as root first (it installs Debian packages and builds mbedTLS 3.6))
endif
endif

# --- sources -----------------------------------------------------------------

PROTOS      := $(wildcard proto/*.proto)
GEN_SRC     := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
GEN_HDR     := $(GEN_SRC:.c=.h)
COMMON_SRC  := $(wildcard common/*.c)
DAEMONS     := redirectord netstackd proxyd webd
# Linux-only files: left out of macOS's build and of both portable builds;
# their portable counterparts (plat_posix.c, sandbox_posix.c, relay_copy.c,
# ps.c's refusal) compile to nothing in the Linux build.
LINUX_ONLY  := common/sandbox.c common/ipc_linux.c common/plat_linux.c \
	proxyd/relay_splice.c ctl/ps_linux.c redirectord/cgroup_linux.c
ifneq ($(DARWIN),)
# netstackd (a TCP/IP stack for TUN) and webd stay Linux's.
DAEMONS     := redirectord proxyd
COMMON_SRC  := $(filter-out $(LINUX_ONLY),$(COMMON_SRC))
endif

define daemon_vars
$(1)_MAIN    := $(1)/$(1).c
$(1)_LIBSRC  := $$(filter-out $(1)/$(1).c,$$(wildcard $(1)/*.c))
$(1)_LIB     := $(BUILD)/lib/lib$(1).a
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_vars,$(d))))
ifneq ($(DARWIN),)
proxyd_LIBSRC      := $(filter-out $(LINUX_ONLY),$(proxyd_LIBSRC))
# The process and its macOS backend, which checks specs with the
# extension's compiler; the rest of redirectord/ is the Linux backend's.
redirectord_LIBSRC := redirectord/backend.c redirectord/backend_macos.c \
	macos-extension/core/mx_spec.c
endif

# storeread/: the flow store's reader, libstoreread.a, linked by localcapctl
# and the viewer (never by a daemon: proxyd shares only storeread/schema.h).
STOREREAD_SRC := $(wildcard storeread/*.c)
STOREREAD_LIB := $(BUILD)/lib/libstoreread.a
# The viewer's processes tab is ctl/ps.c's list, decided by spec.c: linked.
webd_DEPLIBS  := $(OBJ)/ctl/ps.o $(OBJ)/ctl/ps_linux.o $(OBJ)/redirectord/spec.o \
	$(OBJ)/redirectord/cgroup_linux.o $(STOREREAD_LIB)

# localcapctl: ctl/localcapctl.c is main; the other ctl/*.c form libctl.a.
CTL_MAIN    := ctl/localcapctl.c
CTL_LIBSRC  := $(filter-out $(CTL_MAIN) $(if $(DARWIN),$(LINUX_ONLY)),$(wildcard ctl/*.c))
CTL_LIB     := $(BUILD)/lib/libctl.a
# The macOS extension's portable core (macos-extension/core/): built and
# tested here with a simulated platform; the Objective-C shim is only
# syntax-checked here (macos-extension/shim/, make shim-syntax).
MXCORE_SRC  := $(wildcard macos-extension/core/*.c)
MXCORE_LIB  := $(BUILD)/lib/libmxcore.a
UNIT_SRC    := $(wildcard test/unit/test_*.c)
UNIT_BINS   := $(patsubst test/unit/%.c,$(TESTBIN)/%,$(UNIT_SRC))
TEST_HELPER_SRC := $(wildcard test/unit/helpers/*.c)

obj = $(patsubst %.c,$(OBJ)/%.o,$(patsubst $(BUILD)/%,%,$(1)))

COMMON_LIB  := $(BUILD)/lib/libcommon.a
DAEMON_LIBS := $(foreach d,$(DAEMONS),$($(d)_LIB))
BINARIES    := $(addprefix $(BIN)/,$(DAEMONS) localcapctl)

# --- rules -----------------------------------------------------------------

.SECONDARY:
.DELETE_ON_ERROR:
.PHONY: all deps check unit-tests test-bins fuzz demo install clean distclean bench
.DEFAULT_GOAL := all

all: $(BINARIES) $(if $(DARWIN),$(MXCORE_LIB))

deps:
	./scripts/deps.sh

# Rebuild everything when the compiler flags change (e.g. SANITIZE=1 after a
# plain build): objects depend on this file, rewritten only on change.
FLAGS_STAMP := $(BUILD)/flags.stamp
FLAGS_NOW   := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(FLAGS_NOW)' ]; then echo '$(FLAGS_NOW)' >$@; fi
FORCE:

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(@D)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

# Generated code is protoc-c's, not ours: it gets the warnings it was written for.
$(OBJ)/gen/%.o: $(GEN)/%.c $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(filter-out -Wcast-qual -Wmissing-prototypes,$(CFLAGS)) -c $< -o $@

$(OBJ)/%.o: %.c $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(call obj,$(COMMON_SRC) $(GEN_SRC))
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

define daemon_rules
$$($(1)_LIB): $$(call obj,$$($(1)_LIBSRC))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^ $(BUILD)/lib/empty.o

$(BIN)/$(1): $$(call obj,$$($(1)_MAIN)) $$($(1)_LIB) $$($(1)_DEPLIBS) $(COMMON_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$($(1)_LIBS) $$(COMMON_LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rules,$(d))))

# The viewer's page, script and stylesheet, built into webd (webd/assets.c).
WEBD_ASSETS := $(wildcard webd/www/*)
$(GEN)/webd_assets.inc: $(WEBD_ASSETS) scripts/embed-assets.sh
	@mkdir -p $(@D)
	./scripts/embed-assets.sh $@ $(WEBD_ASSETS)
$(OBJ)/webd/assets.o: $(GEN)/webd_assets.inc

# An archive needs at least one member even before a daemon has modules.
$(BUILD)/lib/empty.o: $(FLAGS_STAMP)
	@mkdir -p $(@D)
	echo 'typedef int localcap_empty_unit;' | $(CC) $(CFLAGS) -x c -c - -o $@
$(DAEMON_LIBS): $(BUILD)/lib/empty.o

$(CTL_LIB): $(call obj,$(CTL_LIBSRC)) $(BUILD)/lib/empty.o
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(MXCORE_LIB): $(call obj,$(MXCORE_SRC)) $(BUILD)/lib/empty.o
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(STOREREAD_LIB): $(call obj,$(STOREREAD_SRC))
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# ps decides with spec.c's own matcher (linked, not copied): its
# redirectord objects, pure code with no daemon state (spec.c portable,
# cgroup_linux.c the cgroup v2 ids and walks ps needs on Linux).
CTL_SHARED_OBJ := $(OBJ)/redirectord/spec.o $(if $(DARWIN),,$(OBJ)/redirectord/cgroup_linux.o)

$(BIN)/localcapctl: $(call obj,$(CTL_MAIN)) $(CTL_LIB) $(CTL_SHARED_OBJ) $(STOREREAD_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(localcapctl_LIBS) $(COMMON_LIBS)

# Unit tests link every module library, so they need every daemon's libraries.
ALL_DAEMON_LIBS = $(foreach d,$(DAEMONS) localcapctl,$($(d)_LIBS))

$(TESTBIN)/%: $(OBJ)/test/unit/%.o $(call obj,$(TEST_HELPER_SRC)) $(DAEMON_LIBS) $(CTL_LIB) $(STOREREAD_LIB) $(MXCORE_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(ALL_DAEMON_LIBS) $(COMMON_LIBS)

# Helper programs of the integration scripts: test/integration/NAME.c becomes
# $(TESTBIN)/integration/NAME, linked like a unit test (minus cmocka).
ITEST_SRC  := $(wildcard test/integration/*.c)
ITEST_BINS := $(patsubst test/integration/%.c,$(TESTBIN)/integration/%,$(ITEST_SRC))

$(TESTBIN)/integration/%: $(OBJ)/test/integration/%.o $(DAEMON_LIBS) $(MXCORE_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_DAEMON_LIBS) $(COMMON_LIBS)

test-bins: $(BINARIES) $(UNIT_BINS) $(ITEST_BINS)

# check and demo install what is missing first (scripts/deps.sh is quick
# when nothing is), then build in a fresh make that sees the new packages.
ifeq ($(DARWIN),)
check:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory test-bins
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) ./test/run-tests.sh
else
# The suite needs Linux (namespaces, cgroups, eBPF); on a Mac the core's
# and the platform seam's tests run from the shim's Makefile.
check:
	@echo "make check runs on Linux; on macOS: make -C macos-extension/shim check" >&2
	@exit 1
endif

# --- make PORTABLE=1: what macOS builds, compiled here ------------------------------
# common/, proxyd/, the generated protobuf code and the macOS extension's
# core, without _GNU_SOURCE and with Linux-only names poisoned
# (common/portable_check.h): a Linux-only call there fails here, warnings as
# errors, not first on a Mac.  The platform seam (common/plat.h) takes its
# POSIX side.  Compile only (the *_darwin.c files and the Objective-C shim
# need macOS's headers: .github/workflows/macos.yml).
# Linux-only files (LINUX_ONLY, above), left out of both portable builds.
PORTABLE_LINUX_ONLY := $(LINUX_ONLY)
PORTABLE_PROXYD_SRC := $(filter-out $(PORTABLE_LINUX_ONLY),$(COMMON_SRC) \
	$(proxyd_LIBSRC) $(proxyd_MAIN))
PORTABLE_DIR := build/portable
# localcapctl's own files (ps without ps_linux.c: it refuses on macOS),
# the store reader, and the spec parser it links (redirectord/spec.c
# without cgroup_linux.c).  redirectord: the process and its macOS backend
# (redirectord/backend.h); the rest of redirectord/ is the Linux backend's.
PORTABLE_RD_SRC := redirectord/redirectord.c redirectord/backend.c \
	redirectord/backend_macos.c
PORTABLE_CTL_SRC := $(filter-out $(PORTABLE_LINUX_ONLY),$(CTL_MAIN) \
	$(CTL_LIBSRC)) $(STOREREAD_SRC) redirectord/spec.c
PORTABLE_SRC := $(PORTABLE_PROXYD_SRC) $(MXCORE_SRC) $(PORTABLE_CTL_SRC) \
	$(PORTABLE_RD_SRC)
PORTABLE_OBJ := $(patsubst %.c,$(PORTABLE_DIR)/%.o,$(PORTABLE_SRC)) \
	$(patsubst $(GEN)/%.c,$(PORTABLE_DIR)/gen/%.o,$(GEN_SRC))
PORTABLE_CPPFLAGS = $(filter-out -D_GNU_SOURCE -MMD -MP,$(CPPFLAGS)) \
	-D_DEFAULT_SOURCE -DLC_PORTABLE_CHECK -include common/portable_check.h

$(PORTABLE_DIR)/gen/%.o: $(GEN)/%.c $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(PORTABLE_CPPFLAGS) $(filter-out -Wcast-qual -Wmissing-prototypes,$(CFLAGS)) -c $< -o $@
$(PORTABLE_DIR)/%.o: %.c common/portable_check.h $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(PORTABLE_CPPFLAGS) $(CFLAGS) -c $< -o $@

# The Objective-C shim against its stub SDK headers (also part of make check).
.PHONY: shim-syntax
shim-syntax:
	./test/integration/macos_shim_syntax.sh

.PHONY: portable
portable: $(PORTABLE_OBJ)
	@echo "portable: $(words $(PORTABLE_OBJ)) files compiled as macOS builds them, warning-free"
ifeq ($(PORTABLE),1)
.DEFAULT_GOAL := portable
endif

# make portable-run: proxyd linked on Linux with the platform seam's POSIX
# side (-DLC_PORTABLE): the signer's length-prefixed stream channel, no
# splice, no getrandom/prctl/accept4/close_range, MSG_NOSIGNAL 0, the
# POSIX sandbox.  test/integration/macos_proxyd.sh runs the proxyd tests
# against it, so macOS's code paths run here, not only compile.  Not for
# installing: it confines itself less than the real build.
PRUN_DIR := $(BUILD)/portable-run
# ipc_darwin.c needs macOS (LOCAL_PEERCRED): here ipc keeps its Linux side.
PRUN_SRC := $(PORTABLE_PROXYD_SRC) common/ipc_linux.c
PRUN_OBJ := $(patsubst %.c,$(PRUN_DIR)/obj/%.o,$(PRUN_SRC)) \
	$(patsubst $(GEN)/%.c,$(PRUN_DIR)/obj/gen/%.o,$(GEN_SRC))

$(PRUN_DIR)/obj/gen/%.o: $(GEN)/%.c $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DLC_PORTABLE $(filter-out -Wcast-qual -Wmissing-prototypes,$(CFLAGS)) -c $< -o $@
$(PRUN_DIR)/obj/%.o: %.c $(FLAGS_STAMP) | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DLC_PORTABLE $(CFLAGS) -c $< -o $@
$(PRUN_DIR)/bin/proxyd: $(PRUN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(proxyd_LIBS) $(COMMON_LIBS)

# redirectord the same way, with its macOS backend (backend_macos.c) and
# the extension's spec compiler: test/integration/macos_redirectord.sh runs
# it against the simulated extension.
PRUN_RD_SRC := $(PORTABLE_RD_SRC) macos-extension/core/mx_spec.c \
	$(filter common/%,$(PRUN_SRC))
PRUN_RD_OBJ := $(patsubst %.c,$(PRUN_DIR)/obj/%.o,$(PRUN_RD_SRC)) \
	$(patsubst $(GEN)/%.c,$(PRUN_DIR)/obj/gen/%.o,$(GEN_SRC))
$(PRUN_DIR)/bin/redirectord: $(PRUN_RD_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(COMMON_LIBS)

# localcapctl the same way: what macOS links (no ps_linux.c, no
# cgroup_linux.c), so a Linux-only symbol it still needs fails here.
PRUN_CTL_SRC := $(PORTABLE_CTL_SRC) $(filter common/%,$(PRUN_SRC))
PRUN_CTL_OBJ := $(patsubst %.c,$(PRUN_DIR)/obj/%.o,$(PRUN_CTL_SRC)) \
	$(patsubst $(GEN)/%.c,$(PRUN_DIR)/obj/gen/%.o,$(GEN_SRC))
$(PRUN_DIR)/bin/localcapctl: $(PRUN_CTL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(localcapctl_LIBS) $(COMMON_LIBS)

.PHONY: portable-run
portable-run: $(PRUN_DIR)/bin/proxyd $(PRUN_DIR)/bin/redirectord \
	$(PRUN_DIR)/bin/localcapctl

# test_plat once more, against plat_posix.c: the seam's macOS side, run.
$(TESTBIN)/test_plat_portable: $(PRUN_DIR)/obj/test/unit/test_plat.o \
    $(PRUN_DIR)/obj/common/plat_posix.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)
test-bins: $(TESTBIN)/test_plat_portable

# --- fuzzing (clang + libFuzzer) ------------------------------------------------
FUZZ_SRC  := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(COMMON_SRC) $(foreach d,$(DAEMONS),$($(d)_LIBSRC)) \
	$(STOREREAD_SRC) ctl/ps.c ctl/ps_linux.c $(MXCORE_SRC)
FUZZ_CFLAGS := -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -DLOCALCAP_FUZZING=1

$(BUILD)/fuzz/%: test/fuzz/%.c $(FUZZ_LIB_SRC) $(GEN_SRC) $(GEN_HDR) $(GEN)/webd_assets.inc
	@mkdir -p $(@D)
	clang $(filter-out -MMD -MP,$(CPPFLAGS)) $(FUZZ_CFLAGS) -o $@ $< \
		$(FUZZ_LIB_SRC) $(GEN_SRC) $(ALL_DAEMON_LIBS) $(COMMON_LIBS)

fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) ./test/run-fuzz.sh

# --- the main job ---------------------------------------------------------------
demo:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory all
	BUILD=$(BUILD) ./scripts/demo.sh

# Benchmarks print figures and ratios against a baseline measured in the
# same run; they are not tests.  test/bench/NAME.c -> $(BUILD)/bench/NAME.
BENCH_SRC  := $(wildcard test/bench/*.c)
BENCH_BINS := $(patsubst test/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

$(BUILD)/bench/%: $(OBJ)/test/bench/%.o $(DAEMON_LIBS) $(STOREREAD_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_DAEMON_LIBS) $(COMMON_LIBS) \
		$(BENCH_LIBS) -lpthread

# The proxy benchmark's client speaks TLS with OpenSSL (libssl-dev, a
# benchmark-only dependency: scripts/deps.sh --bench), so that the client is
# never what limits the figures.
$(BUILD)/bench/bench_proxyclient: BENCH_LIBS = -lssl -lcrypto

bench:
	@./scripts/deps.sh --bench
	@$(MAKE) --no-print-directory all test-bins $(BENCH_BINS)
	BUILD=$(BUILD) ./test/bench/run.sh

# --- install ------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/libexec/localcap $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BIN)/,$(DAEMONS)) $(DESTDIR)$(PREFIX)/libexec/localcap/
	install -m 0755 $(BIN)/localcapctl $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/doc/localcap
	install -m 0644 README.md docs/*.md \
		$(DESTDIR)$(PREFIX)/share/doc/localcap/

clean:
	rm -rf $(OBJ) $(BIN) $(BUILD)/lib $(BUILD)/gen $(TESTBIN) $(BUILD)/fuzz \
		$(FLAGS_STAMP) $(PRUN_DIR) $(BUILD)/portable-run.log $(BUILD)/portable-run-rd.log build/sanitize build/portable build/macos

# Also forgets the locally built mbedTLS.
distclean:
	rm -rf $(BUILD)

# eBPF programs and their skeletons (clang -target bpf, bpftool gen skeleton).
ifeq ($(DARWIN),)
-include ebpf/ebpf.mk
endif

# Man pages, systemd units, sysusers.d/tmpfiles.d (part of `make install`).
-include packaging/install.mk

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
-include $(shell find $(PRUN_DIR)/obj -name '*.d' 2>/dev/null)
