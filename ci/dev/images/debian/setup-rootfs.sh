#!/bin/sh
# Run by ci/dev/images.py inside the fresh debootstrap root filesystem (chroot), before it becomes the
# Debian stand-in image: the settings of Debian's own container images (no apt caches or translations,
# no docs, man pages or locales: the "slim" variant), then the -updates and -security upgrades.
set -eu
cat > /etc/apt/apt.conf.d/docker-clean <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/docker-no-languages
cat > /etc/dpkg/dpkg.cfg.d/docker-slim <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CONF
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get -y upgrade
apt-get clean
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/* \
    /usr/share/locale/* /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log
# copied from the host by debootstrap; container runtimes provide their own
rm -f /etc/resolv.conf /etc/hostname
