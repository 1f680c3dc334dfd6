#!/usr/bin/env bash
# Build the tiny bootable guest the real-QEMU tests run: Debian's cloud kernel, a busybox
# initramfs whose /init loads the virtio modules, answers ACPI power-off through acpid and
# writes "cloudctl-guest tick N" to the serial console (ttyS0) every 0.5 s, and a small qcow2
# disk the guest may have attached as vda (it does not use it).
#
# Usage: scripts/build-guest.sh [OUTDIR]   (default /var/cache/cloudctl-test/guest)
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.gz, OUTDIR/disk.qcow2 and OUTDIR/cmdline. A second run
# reuses OUTDIR unless this script changed since it was built. OUTDIR is world-readable: the
# session libvirtds of the live-migration tests run their QEMUs as unprivileged users.
set -euo pipefail

OUTDIR=${1:-/var/cache/cloudctl-test/guest}
case "$OUTDIR" in /*) ;; *) OUTDIR="$PWD/$OUTDIR" ;; esac
# Cached per version of this script, so a changed /init is never hidden by an old build.
STAMP=$(sha256sum "$0" | cut -c1-16)
if [ -f "$OUTDIR/stamp" ] && [ "$(cat "$OUTDIR/stamp")" = "$STAMP" ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
need=()
command -v busybox >/dev/null 2>&1 && busybox --list | grep -qx acpid || need+=(busybox-static)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The cloud kernel's ABI number changes between point releases: ask which one is current.
kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
    apt-get update -qq
    pkg=$(kernel_pkg)
fi
if [ -z "$pkg" ]; then
    echo "build-guest: cannot resolve the package linux-image-cloud-amd64 depends on" >&2
    exit 1
fi

work=$(mktemp -d /tmp/cloudctl-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# apt drops to the _apt user to download; it needs to be able to write here.
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
(cd "$work" && apt-get download -qq "$pkg" >/dev/null)
dpkg-deb -x "$work"/linux-image-*.deb "$work/pkg"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules,etc/acpi/PWRF}
cp /bin/busybox "$root/bin/busybox"
virtio_modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
for mod in $virtio_modules button evdev; do
    found=$(find "$work/pkg/lib/modules" -name "$mod.ko" | head -n1)
    if [ -z "$found" ]; then
        echo "build-guest: module $mod.ko is not in $pkg" >&2
        exit 1
    fi
    cp "$found" "$root/lib/modules/"
done
# busybox acpid runs /etc/acpi/<event>/<code> for a power-button press (what ACPI shutdown
# sends); -f powers off at once, since our /init is no init that could act on a signal.
printf '#!/bin/sh\npoweroff -f\n' >"$root/etc/acpi/PWRF/00000080"
chmod 755 "$root/etc/acpi/PWRF/00000080"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# ACPI first, so that a power-button press right after boot is not lost. Without -l, acpid
# dies at once: its default log, /var/log/acpid.log, cannot be opened here.
insmod /lib/modules/button.ko
insmod /lib/modules/evdev.ko
acpid -l /dev/null
# The cloud kernel has virtio as modules; each needs the ones before it.
for mod in $virtio_modules; do insmod /lib/modules/\$mod.ko; done
i=0
while true; do
    echo "cloudctl-guest tick \$i" >/dev/ttyS0
    i=\$((i + 1))
    sleep 0.5
done
EOF
chmod 755 "$root/init"

new="$OUTDIR.new.$$"
rm -rf "$new"
mkdir -p "$new"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$new/initrd.gz"
cp "$work"/pkg/boot/vmlinuz-* "$new/vmlinuz"
qemu-img create -q -f qcow2 "$new/disk.qcow2" 16M
# quiet: the serial log then holds (almost) only the guest's own lines.
echo "console=ttyS0 quiet panic=-1" >"$new/cmdline"
echo "$pkg" >"$new/kernel-package"
echo "$STAMP" >"$new/stamp"
chmod -R a+rX "$new"
# Swap in whole, so a concurrent reader never sees half a guest.
mkdir -p "$(dirname "$OUTDIR")"
chmod a+rx "$(dirname "$OUTDIR")"
old="$OUTDIR.old.$$"
if [ -e "$OUTDIR" ]; then mv "$OUTDIR" "$old"; fi
mv "$new" "$OUTDIR"
rm -rf "$old"
echo "build-guest: built $OUTDIR from $pkg" >&2
