# packaging/install.mk — `make install` rules for the man pages, the systemd
# units, sysusers.d and tmpfiles.d (and, on macOS, the launchd plists).
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

PKG_UNITS    := $(wildcard packaging/systemd/*.service packaging/systemd/*.target)
PKG_MAN5     := $(wildcard man/*.5)
PKG_MAN8     := $(wildcard man/*.8)
PKG_PLISTS   := $(wildcard packaging/launchd/*.plist)
# Only the path of the daemons changes with PREFIX.
PKG_SUBST    := sed -e 's|/usr/local/libexec/localcap/|$(PREFIX)/libexec/localcap/|g'

.PHONY: install-packaging install-man install-systemd install-launchd

install: install-packaging
install-packaging: install-man install-systemd

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

# macOS only, and by hand (untested; see docs/packaging.md).
install-launchd:
	install -d $(DESTDIR)$(LAUNCHDDIR)
	for p in $(PKG_PLISTS); do \
		$(PKG_SUBST) $$p >$(DESTDIR)$(LAUNCHDDIR)/$${p##*/} && \
		chmod 0644 $(DESTDIR)$(LAUNCHDDIR)/$${p##*/} || exit 1; \
	done
