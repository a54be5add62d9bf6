# packaging/install.mk — `make install` rules for the man pages, the systemd
# units, sysusers.d and tmpfiles.d (on macOS: the launchd plists and the
# Seatbelt profiles instead).
# Included by the top-level Makefile (-include packaging/install.mk), which
# defines DESTDIR, PREFIX, BIN and BUILD; it adds install-packaging to the
# prerequisites of `install`, whose own recipe installs the binaries.
#
# The units name the daemons under /usr/local/libexec/localcap/ (the default
# PREFIX); they are installed with that replaced by $(PREFIX)/libexec/localcap/.
#
#   make install DESTDIR=/tmp/stage PREFIX=/usr
#   make install SYSTEMD_UNITDIR=/etc/systemd/system    # e.g. for /usr/local
#
# After installing outside a package, as root:
#   systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload

SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR     ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR     ?= $(PREFIX)/lib/tmpfiles.d
MANDIR          ?= $(PREFIX)/share/man
LAUNCHDDIR      ?= /Library/LaunchDaemons
SANDBOXDIR      ?= $(PREFIX)/share/localcap/sandbox

PKG_UNITS    := $(wildcard packaging/systemd/*.service packaging/systemd/*.target)
PKG_MAN5     := $(wildcard man/*.5)
PKG_MAN8     := $(wildcard man/*.8)
PKG_PLISTS   := $(wildcard packaging/launchd/*.plist)
PKG_SBPL     := $(wildcard packaging/macos/sandbox/*.sb)
# Only the path of the daemons changes with PREFIX.
PKG_SUBST    := sed -e 's|/usr/local/libexec/localcap/|$(PREFIX)/libexec/localcap/|g'

.PHONY: install-packaging install-man install-systemd install-launchd install-sandbox

install: install-packaging
ifeq ($(DARWIN),)
install-packaging: install-man install-systemd
else
# macOS (the top Makefile's Darwin rules): launchd jobs and the Seatbelt
# profiles the daemons load from $(SANDBOXDIR) (LOCALCAP_SANDBOX_DIR, set
# from PREFIX by the top Makefile).
install-packaging: install-man install-launchd install-sandbox
endif

install-man:
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(PKG_MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(PKG_MAN8) $(DESTDIR)$(MANDIR)/man8/

install-systemd:
	install -d $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(TMPFILESDIR)
	for u in $(PKG_UNITS); do \
		$(PKG_SUBST) $$u >$(DESTDIR)$(SYSTEMD_UNITDIR)/$${u##*/}.tmp && \
		chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$${u##*/}.tmp && \
		mv -f $(DESTDIR)$(SYSTEMD_UNITDIR)/$${u##*/}.tmp \
			$(DESTDIR)$(SYSTEMD_UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 packaging/systemd/localcap.sysusers \
		$(DESTDIR)$(SYSUSERSDIR)/localcap.conf
	install -m 0644 packaging/systemd/localcap.tmpfiles \
		$(DESTDIR)$(TMPFILESDIR)/localcap.conf

# macOS only (untested on a Mac; see docs/packaging.md, docs/macos.md).
install-sandbox:
	install -d $(DESTDIR)$(SANDBOXDIR)
	install -m 0644 $(PKG_SBPL) $(DESTDIR)$(SANDBOXDIR)/

install-launchd:
	install -d $(DESTDIR)$(LAUNCHDDIR)
	for p in $(PKG_PLISTS); do \
		$(PKG_SUBST) $$p >$(DESTDIR)$(LAUNCHDDIR)/$${p##*/} && \
		chmod 0644 $(DESTDIR)$(LAUNCHDDIR)/$${p##*/} || exit 1; \
	done
