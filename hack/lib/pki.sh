# shellcheck shell=bash
# Certificates for the local control plane, made with openssl:
#   ca.crt/ca.key            a CA that signs everything below (and is the client CA)
#   apiserver.crt/.key       serving cert for 127.0.0.1, ::1, localhost and the in-cluster names
#   admin.crt/.key           client cert CN=modelsec-admin, O=system:masters
#   kube-controller-manager.crt/.key, kube-scheduler.crt/.key
#                            client certs CN=system:kube-controller-manager and
#                            CN=system:kube-scheduler: the users the API server's bootstrap
#                            RBAC policy grants those components' permissions
#   sa.key/sa.pub            service-account token signing key pair
# Source this file; call pki::generate DIR.

pki::_openssl() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    printf 'pki: openssl %s failed:\n%s\n' "$1" "$out" >&2
    return 1
  fi
}

# pki::_sign DIR NAME SUBJECT EXTFILE: key + CSR + certificate signed by DIR/ca.
pki::_sign() {
  local dir=$1 name=$2 subj=$3 ext=$4
  pki::_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key"
  pki::_openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr"
  pki::_openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "${PKI_DAYS:-365}" -sha256 -extfile "$ext" -out "$dir/$name.crt"
  rm -f "$dir/$name.csr"
}

pki::generate() {
  local dir=$1
  command -v openssl >/dev/null 2>&1 || { echo "pki: openssl is required (apt-get install openssl)" >&2; return 1; }
  mkdir -p "$dir"
  chmod 700 "$dir"
  (
    umask 077
    pki::_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key"
    pki::_openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "${PKI_DAYS:-365}" \
      -subj "/CN=modelsec-envtest-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$dir/ca.crt"

    cat > "$dir/apiserver.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EXT
    pki::_sign "$dir" apiserver "/CN=kube-apiserver" "$dir/apiserver.ext"

    cat > "$dir/client.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
    pki::_sign "$dir" admin "/O=system:masters/CN=modelsec-admin" "$dir/client.ext"
    pki::_sign "$dir" kube-controller-manager "/CN=system:kube-controller-manager" "$dir/client.ext"
    pki::_sign "$dir" kube-scheduler "/CN=system:kube-scheduler" "$dir/client.ext"

    # Service-account tokens: RSA, as the apiserver's default signing algorithm is RS256.
    pki::_openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key"
    pki::_openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub"
    rm -f "$dir"/*.ext "$dir"/*.srl
  )
}
