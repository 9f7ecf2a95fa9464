# Sourced by hack/control-plane.sh and hack/node.sh: client certificates signed by the
# local cluster's CA, and kubeconfigs that present them. Keys are ECDSA P-256 (fast to
# make; every component of the local cluster accepts them).

# client_cert PKI_DIR NAME COMMON_NAME [ORGANIZATION]: PKI_DIR/NAME.{crt,key}, once.
client_cert() {
  local pki=$1 name=$2 cn=$3 org=${4:-}
  [[ -f "$pki/$name.crt" ]] && return 0
  local subj="/CN=$cn"; [[ -z "$org" ]] || subj="/O=$org/CN=$cn"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# cert_kubeconfig PKI_DIR NAME SERVER OUT: a kubeconfig for SERVER with PKI_DIR/NAME's cert.
cert_kubeconfig() {
  local pki=$1 name=$2 server=$3 out=$4
  cat >"$out" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: verdant-local
  cluster:
    server: ${server}
    certificate-authority: ${pki}/ca.crt
users:
- name: ${name}
  user:
    client-certificate: ${pki}/${name}.crt
    client-key: ${pki}/${name}.key
contexts:
- name: verdant-local
  context: {cluster: verdant-local, user: ${name}}
current-context: verdant-local
KUBECONFIG
}
