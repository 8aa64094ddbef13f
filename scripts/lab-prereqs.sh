#!/bin/sh
# Install what `converge lab` needs on a Debian/Ubuntu machine, as root; idempotent.
#
#   docker.io       dockerd, containerd, runc (the lab runs its own daemons; none is started here)
#   busybox-static  /bin/busybox, the base of the lab's test images
#   haproxy         the binary the converge-lab/haproxy image is made of
#   iproute2        ip (bridge, veth, network namespaces)
#   iptables        the rules that keep lab traffic on the machine
#   util-linux      nsenter, unshare, setsid (normally already there)
#   openssh-server  sshd, started by the integration tests on a lab address for ssh:// engines
#   openssh-client  ssh, which converge (docker-py) runs for ssh:// engines
#   docker-registry the lab's registry (distribution 2.8), started by `converge lab up`
#   apache2-utils   htpasswd, for the registry's basic auth (bcrypt)
#   curl            the HTTP requests of docs/tutorial.md (run by tests/integration/test_tutorial.py)
#   age             age and age-keygen, which make the integration tests' encrypted secrets
set -eu

needed=""
have() { command -v "$1" >/dev/null 2>&1; }
have dockerd && have containerd && have runc || needed="$needed docker.io"
# The images start FROM scratch, so busybox must be the static build, not Debian's `busybox`.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    needed="$needed busybox-static"
have haproxy || [ -x /usr/sbin/haproxy ] || needed="$needed haproxy"
have ip || [ -x /usr/sbin/ip ] || needed="$needed iproute2"
have iptables || [ -x /usr/sbin/iptables ] || needed="$needed iptables"
have nsenter && have unshare && have setsid || needed="$needed util-linux"
have sshd || [ -x /usr/sbin/sshd ] || needed="$needed openssh-server"
have ssh || needed="$needed openssh-client"
have docker-registry || needed="$needed docker-registry"
have htpasswd || needed="$needed apache2-utils"
have curl || needed="$needed curl"
have age && have age-keygen || needed="$needed age"

if [ -z "$needed" ]; then
    echo "lab prerequisites already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root to install:$needed" >&2
    exit 1
fi
echo "installing:$needed"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -q --no-install-recommends $needed
