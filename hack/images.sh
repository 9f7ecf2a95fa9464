#!/usr/bin/env bash
# Builds Verdant's container images on this machine, without a container engine, a
# registry or a pulled base image, and loads them into a containerd.
#
#   hack/images.sh build [--no-cargo] [IMAGE ...]     build the OCI archives (cached)
#   hack/images.sh load --address SOCK [--namespace NS] [--snapshotter NAME] [IMAGE ...]
#                                                     import them into containerd at SOCK
#                                                     (namespace k8s.io, the CRI's, by default)
#   hack/images.sh ref IMAGE                          print the image reference
#   hack/images.sh list                               print "IMAGE REFERENCE ARCHIVE" lines
#
# IMAGE is operator, agent, trainer or pause (default: all four):
#   operator  ghcr.io/verdant-dev/verdant-operator:<appVersion>  the chart's default image
#   agent     ghcr.io/verdant-dev/verdant-agent:<appVersion>     the chart's default image
#   trainer   localhost/verdant-trainer:<appVersion>  Debian python3 + CPU PyTorch 1.13 (gloo);
#             runs `torchrun /opt/verdant/train.py` (see build/trainer/train.py: STEPS,
#             STEP_SECONDS, CHECKPOINT_DIR)
#             Entrypoint torchrun, Cmd /opt/verdant/train.py, user root, OMP_NUM_THREADS=1.
#             On SIGTERM the workers save and exit 0; torchrun (PID 1) then exits 1.
#   pause     registry.k8s.io/pause:3.10  Kubernetes' pause.c, static (containerd's sandbox_image)
# <appVersion> is helm/verdant/Chart.yaml's, so the chart's defaults name these images.
#
# Archives are OCI image layouts in a tar (hack/oci_image.py), written to
# ${VERDANT_IMAGES_DIR:-~/.cache/verdant/images}/IMAGE.tar and rebuilt only when a hash of
# their inputs changes (IMAGE.inputs). `build` first runs `cargo build --release` for the
# operator and agent unless --no-cargo (VERDANT_IMAGES_PROFILE=debug packages target/debug
# instead);
# `load` never compiles: it packages the binaries already built and skips images that
# containerd already holds at the same digest. The Dockerfile at the repository root
# builds the operator and agent the same way for a registry.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${VERDANT_IMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/verdant/images}"
PROFILE="${VERDANT_IMAGES_PROFILE:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
SUITE=bookworm
ALL_IMAGES=(operator agent trainer pause)
PAUSE_REF=registry.k8s.io/pause:3.10
# Runtime files of the operator and agent images: what distroless cc-debian12 holds for a
# Rust binary (glibc, libgcc_s, CA bundle, time zones, /etc/services, os-release).
RUNTIME_PACKAGES=(libc6 libgcc-s1 ca-certificates tzdata netbase base-files)
NONROOT_UID=65532
TRAINER_DESCRIPTION="A small PyTorch DDP run (gloo, CPU) for Verdant's real-node tests"
# Everything in the images is dated to this instant, so archives are reproducible.
export SOURCE_DATE_EPOCH=0

log() { echo "[images] $*" >&2; }
die() { log "$*"; exit 1; }

app_version() { awk -F'"' '/^appVersion:/ { print $2; exit }' "$REPO/helm/verdant/Chart.yaml"; }

# The default image repository in the chart's values.yaml: the first `repository:` under
# the top-level key (operator: or agent:).
chart_repository() {
  awk -v want="$1:" '/^[^ #]/ { top = $1 } top == want && $1 == "repository:" { print $2; exit }' \
    "$REPO/helm/verdant/values.yaml"
}

ref_of() {
  case "$1" in
    operator | agent) echo "$(chart_repository "$1"):$(app_version)" ;;
    trainer) echo "localhost/verdant-trainer:$(app_version)" ;;
    pause) echo "$PAUSE_REF" ;;
    *) die "unknown image '$1' (one of: ${ALL_IMAGES[*]})" ;;
  esac
}

hash_of() { sha256sum | cut -c1-16; }

# The Debian mirror this machine's apt uses (never written into the repository).
debian_mirror() {
  local uri
  uri="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -n "$uri" ]] || uri="$(awk '$1 == "deb" && $0 ~ / main/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n "$uri" ]] || die "no Debian mirror in /etc/apt/sources.list{,.d/*.sources}"
  echo "$uri"
}

# The versions apt would install now: a change (a security update) rebuilds the image.
candidate_versions() { apt-cache show --no-all-versions "$@" | awk '/^Package:/ { p = $2 } /^Version:/ { print p, $2 }'; }

strip_docs() {
  local root=$1
  rm -rf "$root"/usr/share/{doc,man,info,lintian,linda,bug} "$root"/usr/share/locale/* \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/usr/include
  find "$root" -name '*.a' -delete
}

# --- the operator's and agent's runtime layer (distroless-like, non-root) ---------------

runtime_key() {
  { declare -f build_runtime_rootfs; candidate_versions "${RUNTIME_PACKAGES[@]}"; } | hash_of
}

build_runtime_rootfs() {
  local dest=$1 debs root
  debs="$(mktemp -d)"
  root="$dest.tmp"
  rm -rf "$root" && mkdir -p "$root"
  chown _apt "$debs" 2>/dev/null || true # apt downloads as _apt when it can
  (cd "$debs" && apt-get download -q "${RUNTIME_PACKAGES[@]}" >/dev/null) ||
    die "apt-get download ${RUNTIME_PACKAGES[*]} failed (run apt-get update?)"
  local deb
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$debs"
  # What update-ca-certificates would generate from the default (all Mozilla) selection.
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root/usr/share/ca-certificates" "$root/usr/sbin/update-ca-certificates" "$root/etc/ca-certificates"*
  cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT_UID:$NONROOT_UID:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<EOF
root:x:0:
nogroup:x:65534:
nonroot:x:$NONROOT_UID:
EOF
  install -d -m 0700 "$root/root"
  install -d -m 0700 -o "$NONROOT_UID" -g "$NONROOT_UID" "$root/home/nonroot"
  install -d -m 1777 "$root/tmp"
  strip_docs "$root"
  rm -rf "$dest" && mv "$root" "$dest"
}

# --- the trainer's base layer: Debian minbase + python3-torch, pruned ---------------------

trainer_key() {
  { declare -f build_trainer_rootfs prune_unlinked_packages; candidate_versions python3-torch libtorch1.13; } | hash_of
}

build_trainer_rootfs() {
  local dest=$1 root="$1.tmp" started=$SECONDS phase=$SECONDS timings=""
  rm -rf "$root"
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap (make prereqs)"
  log "trainer: debootstrap --variant=minbase $SUITE (a few minutes, once)"
  debootstrap --variant=minbase "$SUITE" "$root" "$(debian_mirror)" >"$OUT/trainer-debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $OUT/trainer-debootstrap.log"
  timings="debootstrap $((SECONDS - phase))s" phase=$SECONDS
  chroot "$root" dpkg-query -W -f '${Package}\n' | sort >"$root.minbase"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # As Debian's slim images: no fsync per unpacked file, and no docs or translations.
  printf '%s\n' force-unsafe-io 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/verdant-build"
  log "trainer: apt-get install python3-torch (CPU-only PyTorch 1.13 from Debian)"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch >"$OUT/trainer-apt.log" 2>&1 || die "installing python3-torch failed; see $OUT/trainer-apt.log"
  timings+=", apt-get install $((SECONDS - phase))s" phase=$SECONDS
  # torchrun's Std.from_str iterates `for s in Std`, which on Python 3.11 skips the NONE (0)
  # and ALL (3) flags, so every torchrun without --redirects/--tee crashes with
  # "'NoneType' object has no attribute 'get'". Iterate all members instead.
  local std="$root/usr/lib/python3/dist-packages/torch/distributed/elastic/multiprocessing/api.py"
  grep -q '^            for s in Std:$' "$std" || die "torchrun's Std.from_str changed; revisit the patch in $0"
  sed -i 's/^            for s in Std:$/            for s in Std.__members__.values():/' "$std"
  rm -f "$(dirname "$std")"/__pycache__/api.*.pyc
  prune_unlinked_packages "$root"
  # Lazily imported by torch, unused by training: sympy (fx symbolic shapes), hypothesis.
  chroot "$root" dpkg --purge --force-depends python3-sympy python3-mpmath python3-hypothesis \
    python3-sortedcontainers >/dev/null 2>&1
  rm -f "$root/etc/resolv.conf" "$root.minbase" "$root/etc/dpkg/dpkg.cfg.d/verdant-build"
  strip_docs "$root"
  chroot "$root" python3 -c 'import torch, torch.distributed as d, torch.distributed.run; assert d.is_gloo_available()' ||
    die "the trainer's torch does not import after pruning"
  rm -rf "$dest" && mv "$root" "$dest"
  log "trainer: root filesystem $(du -sh "$dest" | cut -f1) in $((SECONDS - started))s ($timings, pruning $((SECONDS - phase))s)"
}

# python3-torch drags in about 340 packages (OpenCV with its GUI, FFmpeg, GDAL, Mesa and
# LLVM). Keep the ones that own a shared library the Python extensions and interpreter
# load (the ldd closure), the Python packages, and debootstrap's own; purge the rest.
prune_unlinked_packages() {
  local root=$1 keep all remove
  keep="$(chroot "$root" sh -s <<'EOF'
{ find /usr/lib/python3/dist-packages /usr/lib/python3.11/lib-dynload -name '*.so*' -type f
  echo /usr/bin/python3.11; } |
  while read -r f; do echo "$f"; ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'; done | sort -u |
  while read -r f; do echo "$f"; readlink -f "$f"; done | sort -u |
  xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | tr ',' '\n' | tr -d ' ' | sort -u
EOF
)"
  all="$(chroot "$root" dpkg-query -W -f '${Package}\n' | sort)"
  remove="$(comm -23 <(echo "$all") <(echo "$keep") | comm -23 - "$root.minbase" |
    grep -vE '^(python3|libpython3|ca-certificates|media-types|tzdata)' || true)"
  log "trainer: purging $(echo "$remove" | wc -w) packages no Python extension links"
  # shellcheck disable=SC2086
  chroot "$root" dpkg --purge --force-depends $remove >"$OUT/trainer-purge.log" 2>&1 ||
    die "dpkg --purge failed; see $OUT/trainer-purge.log"
}

# --- the pause image ------------------------------------------------------------------------

kube_version() { awk '$1 == "k8s.io/kubernetes" || ($1 == "require" && $2 == "k8s.io/kubernetes") { print ($1 == "require" ? $3 : $2); exit }' "$REPO/hack/tools/kube/go.mod"; }

pause_source() {
  local v dir
  v="$(kube_version)"
  dir="$(GOFLAGS=-mod=mod go env GOMODCACHE)/k8s.io/kubernetes@$v"
  if [[ ! -f "$dir/build/pause/linux/pause.c" ]]; then
    (cd "$REPO/hack/tools/kube" && GOTOOLCHAIN=local go mod download k8s.io/kubernetes) ||
      die "cannot fetch the k8s.io/kubernetes $v module for pause.c"
  fi
  echo "$dir/build/pause/linux/pause.c"
}

# --- assembling ---------------------------------------------------------------------------

binary_of() {
  local bin="$TARGET_DIR/$PROFILE/verdant-$1"
  [[ -x "$bin" ]] || die "$bin is missing: run hack/images.sh build (or make images)"
  echo "$bin"
}

labels_of() { # image, description
  if [[ "$1" == operator || "$1" == agent ]]; then
    printf -- '--label\norg.opencontainers.image.revision=%s\n' "$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
  fi
  printf -- '--label\n%s\n' \
    "org.opencontainers.image.title=verdant-$1" \
    "org.opencontainers.image.description=$2" \
    "org.opencontainers.image.version=$(app_version)" \
    "org.opencontainers.image.source=$(awk -F'"' '/^repository *=/ { print $2; exit }' "$REPO/Cargo.toml")" \
    "org.opencontainers.image.licenses=$(awk -F'"' '/^license *=/ { print $2; exit }' "$REPO/Cargo.toml")"
}

# A folder holding one file, for a one-file layer.
single_file_layer() { # source, path in image, mode
  local dir
  dir="$(mktemp -d)"
  install -D -m "$3" "$1" "$dir$2"
  echo "$dir"
}

# An archive is fresh when it was built from the same inputs (and the same assembler).
inputs_key() { echo "$1 $(sha256sum "$REPO/hack/oci_image.py")" | hash_of; }
is_fresh() { [[ -f "$OUT/$1.tar" && "$(cat "$OUT/$1.inputs" 2>/dev/null)" == "$(inputs_key "$2")" ]]; }

cached_rootfs() { # kind (runtime|trainer), key
  local dir="$OUT/rootfs/$1-$2"
  if [[ ! -d "$dir" ]]; then
    mkdir -p "$OUT/rootfs"
    rm -rf "$OUT/rootfs/$1-"*
    "build_$1_rootfs" "$dir"
  fi
  echo "$dir"
}

assemble() { # image, key, oci_image.py args...
  local image=$1 key=$2 started=$SECONDS
  shift 2
  python3 "$REPO/hack/oci_image.py" --name "$(ref_of "$image")" --out "$OUT/$image.tar" "$@" >/dev/null
  inputs_key "$key" >"$OUT/$image.inputs"
  log "$image: $(ref_of "$image") $(du -h "$OUT/$image.tar" | cut -f1) in $((SECONDS - started))s"
}

build_rust_image() { # operator|agent
  local image=$1 bin runtime layer key description
  bin="$(binary_of "$image")"
  description="$(awk -F'"' '/^description *=/ { print $2; exit }' "$REPO/$image/Cargo.toml")"
  key="$({ sha256sum "$bin"; runtime_key; labels_of "$image" "$description"; echo "$PROFILE"; } | hash_of)"
  is_fresh "$image" "$key" && return 0
  runtime="$(cached_rootfs runtime "$(runtime_key)")"
  layer="$(single_file_layer "$bin" "/usr/local/bin/verdant-$image" 0755)"
  local args=()
  mapfile -t args < <(labels_of "$image" "$description")
  assemble "$image" "$key" --layer "$runtime" --layer "$layer" \
    --entrypoint "/usr/local/bin/verdant-$image" --user "$NONROOT_UID:$NONROOT_UID" --workdir /home/nonroot \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "${args[@]}"
  rm -rf "$layer"
}

build_trainer_image() {
  local base layer key
  local script="$REPO/build/trainer/train.py"
  key="$({ trainer_key; sha256sum "$script"; labels_of trainer "$TRAINER_DESCRIPTION"; } | hash_of)"
  is_fresh trainer "$key" && return 0
  base="$(cached_rootfs trainer "$(trainer_key)")"
  layer="$(single_file_layer "$script" /opt/verdant/train.py 0644)"
  local args=()
  mapfile -t args < <(labels_of trainer "$TRAINER_DESCRIPTION")
  assemble trainer "$key" --layer "$base" --layer "$layer" \
    --entrypoint torchrun --cmd /opt/verdant/train.py --workdir /opt/verdant \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env PYTHONUNBUFFERED=1 --env OMP_NUM_THREADS=1 "${args[@]}"
  rm -rf "$layer"
}

build_pause_image() {
  local src key dir
  src="$(pause_source)"
  key="$({ sha256sum "$src"; gcc --version | head -1; dpkg-query -W libc6-dev; } | hash_of)"
  is_fresh pause "$key" && return 0
  dir="$(mktemp -d)"
  # As Kubernetes' build/pause/Makefile compiles it.
  gcc -Os -Wall -Werror -static -DVERSION="v3.10-verdant" -o "$dir/pause" "$src" ||
    die "compiling pause.c failed (needs gcc and libc6-dev)"
  strip "$dir/pause"
  assemble pause "$key" --layer "$dir" --entrypoint /pause --user 65535:65535 \
    --label "org.opencontainers.image.source=https://github.com/kubernetes/kubernetes/tree/master/build/pause"
  rm -rf "$dir"
}

build_images() { # [--no-cargo] images...
  local cargo=1
  if [[ "${1:-}" == --no-cargo ]]; then cargo=0; shift; fi
  local images=("$@")
  [[ ${#images[@]} -gt 0 ]] || images=("${ALL_IMAGES[@]}")
  mkdir -p "$OUT"
  # One build at a time per cache (two test runs may start nodes at once).
  exec 9>"$OUT/.lock"
  flock 9
  local image packages=()
  for image in "${images[@]}"; do
    ref_of "$image" >/dev/null
    [[ "$image" == operator || "$image" == agent ]] && packages+=(-p "verdant-$image")
  done
  if [[ $cargo == 1 && ${#packages[@]} -gt 0 ]]; then
    local profile_flag=(--release)
    [[ "$PROFILE" == release ]] || profile_flag=()
    log "cargo build ${profile_flag[*]} ${packages[*]}"
    (cd "$REPO" && cargo build --locked "${profile_flag[@]}" "${packages[@]}")
  fi
  for image in "${images[@]}"; do
    case "$image" in
      operator | agent) build_rust_image "$image" ;;
      trainer) build_trainer_image ;;
      pause) build_pause_image ;;
    esac
  done
}

# The manifest digest in an archive's index.json.
archive_digest() { tar -xOf "$1" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'; }

load_images() {
  local address="" namespace=k8s.io snapshotter=() images=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --address) address=${2:?--address needs a socket path}; shift 2 ;;
      --address=*) address=${1#--address=}; shift ;;
      --namespace) namespace=${2:?--namespace needs a name}; shift 2 ;;
      --snapshotter) snapshotter=(--snapshotter "${2:?--snapshotter needs a name}"); shift 2 ;;
      -*) die "load: unknown flag $1" ;;
      *) images+=("$1"); shift ;;
    esac
  done
  [[ -n "$address" ]] || die "load: --address SOCKET (containerd's) is required"
  [[ -S "$address" ]] || die "load: $address is not a socket (is containerd running?)"
  [[ ${#images[@]} -gt 0 ]] || images=("${ALL_IMAGES[@]}")
  build_images --no-cargo "${images[@]}"
  local image ref have want
  for image in "${images[@]}"; do
    ref="$(ref_of "$image")"
    want="$(archive_digest "$OUT/$image.tar")"
    have="$(ctr --address "$address" --namespace "$namespace" images ls "name==$ref" 2>/dev/null | awk 'NR == 2 { print $3 }')"
    if [[ "$have" == "$want" ]]; then
      continue
    fi
    local started=$SECONDS
    ctr --address "$address" --namespace "$namespace" images import "${snapshotter[@]}" "$OUT/$image.tar" >/dev/null ||
      die "ctr images import $OUT/$image.tar into $address failed"
    log "loaded $ref ($want) in $((SECONDS - started))s"
  done
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  build) build_images "$@" ;;
  load) load_images "$@" ;;
  ref) ref_of "${1:?ref IMAGE}" ;;
  list) for image in "${ALL_IMAGES[@]}"; do echo "$image $(ref_of "$image") $OUT/$image.tar"; done ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
