# Sourced by bench/run and bench/instructions: installs the commands a benchmark needs when
# they are missing, builds weft-proxy as the image ships it (the `dist` profile), and weft
# (release) for the control plane.
# Usage: prepare COMMAND:PACKAGE...

prepare() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  if ((${#missing[@]})); then
    local sudo_cmd=""
    [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  cargo build --profile dist --quiet -p weft-proxy --bin weft-proxy
  # The control plane, which the mutual-TLS mesh path gets its identities from (not measured).
  cargo build --release --quiet -p weft --bin weft
}
