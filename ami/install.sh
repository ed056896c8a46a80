#!/bin/sh
# Installs wakame on a Debian or Ubuntu host (what the Packer template runs while baking the AMI):
# the single executable (dist/wakame, `npm run build:sea`) as /usr/local/bin/wakame with wakameadm
# beside it, the systemd unit, the default config, the wakame user, /etc/wakame and /var/lib/wakame,
# and the balancer packages (haproxy, nginx). Run it again at any time: it changes only what differs.
#
# usage: install.sh [--binary FILE] [--psk FILE] [--admin-token FILE] [--no-packages] [--no-enable]
#   --binary FILE       the executable to install (default: $WAKAME_BINARY, else ./wakame beside this
#                       script, else ../dist/wakame)
#   --psk FILE          install this pre-shared key as /etc/wakame/secrets/psk.key (0600, wakame);
#   --admin-token FILE  and this admin token as /etc/wakame/secrets/admin.token. Leave both out when
#                       the secrets come at boot (user-data references, see README): an AMI holding
#                       them hands the key to anyone who can launch or copy the image.
#   --no-packages       do not apt-get install haproxy and nginx
#   --no-enable         install the unit without enabling it at boot
# DESTDIR=DIR installs into DIR as the root (for tests and image builders): no apt-get, no running
# systemd is touched; the user is created in DIR/etc/passwd when that file exists.
#
# The daemon is never started here: on an AMI the first start must happen on the instance, so that
# each node makes its own identity in /var/lib/wakame (a baked one would be shared by every instance).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dest=${DESTDIR:-}
binary=${WAKAME_BINARY:-}
psk=''
token=''
packages=yes
enable=yes

die () { echo "install.sh: $*" >&2; exit 1; }
say () { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; shift 2 ;;
    --psk) [ $# -ge 2 ] || die "--psk needs a file"; psk=$2; shift 2 ;;
    --admin-token) [ $# -ge 2 ] || die "--admin-token needs a file"; token=$2; shift 2 ;;
    --no-packages) packages=no; shift ;;
    --no-enable) enable=no; shift ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [ -z "$binary" ]; then
  for f in "$here/wakame" "$here/../dist/wakame"; do
    if [ -f "$f" ]; then binary=$f; break; fi
  done
fi
[ -n "$binary" ] && [ -f "$binary" ] || die "no wakame binary: build it with \`npm run build:sea\` or pass --binary FILE"
for f in wakame.service agent.yaml wakame-profile.sh; do [ -f "$here/$f" ] || die "$here/$f is missing: run install.sh from the ami/ directory it came in"; done
[ -z "$psk" ] || [ -f "$psk" ] || die "--psk $psk: no such file"
[ -z "$token" ] || [ -f "$token" ] || die "--admin-token $token: no such file"

root=yes
[ "$(id -u)" = 0 ] || root=no
[ -n "$dest" ] || [ $root = yes ] || die "run as root (or with DESTDIR=DIR to stage the files)"

# 1. The balancer packages. wakame runs haproxy and nginx itself, with configs it renders from
# membership, so the distributions' own services are masked: they would take port 80 at boot.
if [ -z "$dest" ] && [ $packages = yes ]; then
  missing=''
  for p in haproxy nginx; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    say "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  if command -v systemctl >/dev/null 2>&1; then
    for u in haproxy.service nginx.service; do
      [ "$(systemctl is-enabled "$u" 2>/dev/null || true)" = masked ] || { systemctl stop "$u" 2>/dev/null || true; systemctl mask -q "$u"; }
    done
  fi
fi

# 2. The wakame user: a system user with no login, whose home is the state directory.
passwd_file="$dest/etc/passwd"
if [ $root = no ]; then
  say "not root: not creating the wakame user; files stay owned by $(id -un)"
  uid=$(id -u); gid=$(id -g)
elif [ -f "$passwd_file" ]; then
  if ! grep -q '^wakame:' "$passwd_file"; then
    say "creating the wakame user"
    if [ -n "$dest" ]; then set -- --prefix "$dest"; else set --; fi
    useradd "$@" --system --user-group --home-dir /var/lib/wakame --no-create-home \
      --shell /usr/sbin/nologin --comment 'wakame cluster agent' wakame
  fi
  # Numbers, from the (DESTDIR's) passwd file: the host's name service knows nothing of DESTDIR.
  uid=$(awk -F: '$1 == "wakame" { print $3 }' "$passwd_file")
  gid=$(awk -F: '$1 == "wakame" { print $4 }' "$passwd_file")
else
  say "no $passwd_file: not creating the wakame user; files stay owned by root"
  uid=0; gid=0
fi

# own OWNER:GROUP PATH: only root can give files away; a non-root DESTDIR run keeps its own.
own () { if [ $root = yes ]; then chown "$1" "$2"; fi; }

# put MODE OWNER:GROUP SOURCE TARGET: copy only when the content differs, then set mode and owner.
put () {
  mkdir -p "$(dirname "$4")"
  if [ ! -f "$4" ] || ! cmp -s "$3" "$4"; then
    # Copy beside and rename: a running wakame (an upgrade) keeps its open file, nothing sees half a file.
    cp "$3" "$4.tmp.$$"
    chmod "$1" "$4.tmp.$$"
    own "$2" "$4.tmp.$$"
    mv -f "$4.tmp.$$" "$4"
    say "installed $4"
  fi
  chmod "$1" "$4"
  own "$2" "$4"
}

# dir MODE OWNER:GROUP PATH
dir () {
  mkdir -p "$3"
  chmod "$1" "$3"
  own "$2" "$3"
}

# 3. Files.
put 0755 0:0 "$binary" "$dest/usr/local/bin/wakame"
# The same binary is the admin CLI under this name.
ln -sfn wakame "$dest/usr/local/bin/wakameadm"

dir 0755 0:0 "$dest/etc/wakame"
# The config is the operator's once installed: a changed default is put beside it, not over it.
if [ -f "$dest/etc/wakame/agent.yaml" ] && ! cmp -s "$here/agent.yaml" "$dest/etc/wakame/agent.yaml"; then
  put 0644 0:0 "$here/agent.yaml" "$dest/etc/wakame/agent.yaml.default"
  say "kept the existing /etc/wakame/agent.yaml; the new default is agent.yaml.default"
else
  put 0644 0:0 "$here/agent.yaml" "$dest/etc/wakame/agent.yaml"
fi

# Secrets: a directory only wakame can enter, files only wakame can read (the daemon refuses a key
# or token that others can read).
dir 0700 "$uid:$gid" "$dest/etc/wakame/secrets"
[ -z "$psk" ] || put 0600 "$uid:$gid" "$psk" "$dest/etc/wakame/secrets/psk.key"
[ -z "$token" ] || put 0600 "$uid:$gid" "$token" "$dest/etc/wakame/secrets/admin.token"

# State: the unit's StateDirectory= would create it too; made here so the owner is right from the start.
dir 0750 "$uid:$gid" "$dest/var/lib/wakame"

put 0644 0:0 "$here/wakame.service" "$dest/etc/systemd/system/wakame.service"
# Login shells on the node point wakameadm at the local agent.
put 0644 0:0 "$here/wakame-profile.sh" "$dest/etc/profile.d/wakame.sh"

# 4. Enabled at boot (not started). systemctl --root works offline, on DESTDIR too.
if [ $enable = yes ]; then
  if command -v systemctl >/dev/null 2>&1; then
    if [ -n "$dest" ]; then
      systemctl --root="$dest" enable wakame.service >/dev/null 2>&1
    else
      systemctl daemon-reload 2>/dev/null || true # no running systemd (a container, a chroot): fine
      systemctl enable wakame.service >/dev/null 2>&1
    fi
  else
    mkdir -p "$dest/etc/systemd/system/multi-user.target.wants"
    ln -sfn /etc/systemd/system/wakame.service "$dest/etc/systemd/system/multi-user.target.wants/wakame.service"
  fi
fi

version=$("$dest/usr/local/bin/wakame" --version 2>/dev/null) || version='? (--version failed: built for another architecture?)'
say "done: wakame $version in ${dest:-/}"
if [ ! -f "$dest/etc/wakame/secrets/psk.key" ] || [ ! -f "$dest/etc/wakame/secrets/admin.token" ]; then
  say "secrets: none in /etc/wakame/secrets; give them by reference in user-data, or install them with --psk and --admin-token"
fi
