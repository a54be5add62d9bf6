# BPF build rules, -included by the top Makefile (which defines GEN, OBJ,
# BUILD, TESTBIN, PKG_CONFIG, CC, CPPFLAGS, CFLAGS, LDFLAGS, FLAGS_STAMP).
#
#   vmlinux.h        generated from the running kernel's BTF (not committed)
#   capture.bpf.o    clang -target bpf, CO-RE relocations against vmlinux.h
#   capture.skel.h   bpftool gen skeleton: embeds the object for redirectord
#
# Also the two helper programs of test/integration/ebpf_capture.sh.

BPF_CLANG ?= clang
BPFTOOL   ?= bpftool
BPF_BTF   ?= /sys/kernel/btf/vmlinux
BPF_ARCH  := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' \
	-e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/')
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Werror \
	-I$(GEN) -Iebpf

redirectord_LIBS += $(shell $(PKG_CONFIG) --libs libbpf libcap)

$(GEN)/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file $(BPF_BTF) format c >$@.tmp && mv $@.tmp $@

$(GEN)/capture.bpf.o: ebpf/capture.bpf.c ebpf/capture.h $(GEN)/vmlinux.h
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(GEN)/capture.skel.h: $(GEN)/capture.bpf.o ebpf/ebpf.mk
	$(BPFTOOL) gen skeleton $< name lc_capture >$@.tmp && mv $@.tmp $@

$(OBJ)/redirectord/bpf.o: $(GEN)/capture.skel.h
$(FUZZ_BINS): $(GEN)/capture.skel.h

# Integration helpers: built with the unit tests, run by ebpf_capture.sh.
EBPF_TEST_HELPERS := $(TESTBIN)/ebpf-attach-helper $(TESTBIN)/tun-reader

$(TESTBIN)/ebpf-attach-helper: $(OBJ)/test/integration/ebpf_attach_helper.o \
		$(BUILD)/lib/libredirectord.a $(BUILD)/lib/libcommon.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(redirectord_LIBS) $(COMMON_LIBS)

$(TESTBIN)/tun-reader: $(OBJ)/test/integration/tun_reader.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

test-bins: $(EBPF_TEST_HELPERS)
