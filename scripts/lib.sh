# Shared helpers for tern's scripts. Source it: `. "$(dirname "$0")/lib.sh"`.
# Sets TERN_ROOT (the repository root) and cds there.

TERN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TERN_ROOT" || exit 1

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  _bold=$'\e[1m' _red=$'\e[31m' _green=$'\e[32m' _yellow=$'\e[33m' _off=$'\e[0m'
else
  _bold='' _red='' _green='' _yellow='' _off=''
fi

info() { printf '%s\n' "$*"; }
warn() { printf '%swarning:%s %s\n' "$_yellow" "$_off" "$*" >&2; }
die() { printf '%serror:%s %s\n' "$_red" "$_off" "$*" >&2; exit 1; }
ok() { printf '%s%s%s\n' "$_green" "$*" "$_off"; }
bad() { printf '%s%s%s\n' "$_red" "$*" "$_off"; }
header() { printf '\n%s==== %s ====%s\n' "$_bold" "$*" "$_off"; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

# Configures (or reconfigures, keeping objects) a meson build dir. Extra args: meson options.
# Re-runs are incremental: an existing dir is reconfigured with the given options, not wiped.
# Prints meson's messages (parts left out and why); on failure, the end of meson's output.
meson_setup() {
  local dir=$1
  shift
  local log rc=0
  log=$(mktemp)
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$dir" "$@" >"$log" 2>&1 || rc=$?
    # Made by another meson version: only then start the dir afresh.
    if [ $rc -ne 0 ] && grep -qi 'incompatible' "$log"; then
      rc=0
      meson setup --wipe "$dir" "$@" >"$log" 2>&1 || rc=$?
    fi
  else
    meson setup "$dir" "$@" >"$log" 2>&1 || rc=$?
  fi
  # What meson left out and why (rdma, dpdk, ...), so it shows in every run.
  grep -E '^Message:' "$log" | sed 's/^Message: /  /'
  [ $rc -eq 0 ] || tail -n 30 "$log" >&2
  rm -f "$log"
  return $rc
}

# Makes a throwaway pre-shared key file (mode 0600) at $1 for ternd --auth-key-file, so the
# ternd processes a script starts authenticate their migration channels (docs/security.md).
# Every ternd of one migration must be given the same file.
make_throwaway_key() {
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1" && echo >>"$1")
}

# Makes throwaway x509 credentials for ternd --tls-creds in directory $1 (created), laid out as
# QEMU's tls-creds-x509: a CA, and both pairs (server: SAN IP:127.0.0.1 and DNS:localhost;
# client: CN=tern-source,O=tern), ECDSA P-256, valid 2 days. Both sides of a migration on this
# host may use the same directory. Needs the openssl command.
make_throwaway_tls() {
  local d=$1 role san
  mkdir -p "$d" && chmod 700 "$d"
  (umask 077
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
     -subj /CN=tern-throwaway-ca -keyout "$d/ca-key.pem" -out "$d/ca-cert.pem" >/dev/null 2>&1 &&
   for role in server client; do
     san=""; [ $role = server ] && san="-addext subjectAltName=IP:127.0.0.1,DNS:localhost"
     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
       -subj "/O=tern/CN=tern-$([ $role = server ] && echo destination || echo source)" \
       -CA "$d/ca-cert.pem" -CAkey "$d/ca-key.pem" \
       -addext basicConstraints=critical,CA:FALSE $san \
       -keyout "$d/$role-key.pem" -out "$d/$role-cert.pem" >/dev/null 2>&1 || return 1
   done)
}
