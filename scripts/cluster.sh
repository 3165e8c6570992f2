#!/usr/bin/env bash
# A real single-node Kubernetes + KServe on this machine, built from source (no container registry is reachable
# here: everything comes from the Go module proxy and Debian's packages). Written from the recipe that was
# tested by hand on this kind of machine (docs/deploy.md, "A real cluster on one machine"), with every pitfall
# of this host noted where it is handled.
#
#   bash scripts/cluster.sh build           build the binaries once (pinned versions; ~9 min cold on 2 cores)
#   bash scripts/cluster.sh up              start etcd, the control plane, containerd, kubelet, kube-proxy, CoreDNS,
#                                           metrics-server (HPAs get their CPU figures)
#   bash scripts/cluster.sh kserve          install KServe: CRDs, inferenceservice-config (Standard mode), the
#                                           controller run out of cluster with its webhooks (self-made cert)
#   bash scripts/cluster.sh load IMAGE...   copy podman images into the cluster's containerd (imagePullPolicy: Never)
#   bash scripts/cluster.sh status          what runs, the node, the pods
#   bash scripts/cluster.sh env             print `export KUBECONFIG=...`
#   bash scripts/cluster.sh down            stop everything `up`/`kserve` started, remove its state (safe to repeat,
#                                           and after a half-failed `up`)
#
# Environment: K8S_HOME (default: ${XDG_CACHE_HOME:-~/.cache}/audioguard-cluster: every checkout on the machine
# shares it, so a cold build is paid once; one cluster at a time, `up` refuses a second), K8S_VERSION (v1.34.2),
# ETCD_VERSION (v3.6.13), KSERVE_VERSION (v0.20.0), COREDNS_VERSION (v1.12.4), METRICS_SERVER_VERSION (v0.8.1).
# Binaries go to $K8S_HOME/bin with the versions they were built from in $K8S_HOME/bin/VERSIONS (a component is rebuilt when its version changes) and their sha256 sums in
# $K8S_HOME/bin/SHA256SUMS (written when something was built, checked by every later build/up); the running cluster's
# state (pids, logs, kubeconfig, etcd, containerd) in $K8S_HOME/run, removed by `down`.
# Everything listens on 127.0.0.1, except the API server and metrics-server: on 10.244.0.1, the address of the pod
# network's bridge (k8slocal0, made here with no uplink and no NAT, so nothing leaves the machine), and KServe's webhook server
# (port 19443 on all addresses: controller-runtime has no flag for its host).
# Needs root, Go >= 1.24, and `apt-get install containerd containernetworking-plugins runc iptables gcc podman
# openssl` (checked, not installed, by this script).
set -euo pipefail
PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$PROJECT/scripts/cluster
K8S_HOME=${K8S_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/audioguard-cluster}
K8S_VERSION=${K8S_VERSION:-v1.34.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.13}
KSERVE_VERSION=${KSERVE_VERSION:-v0.20.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.1}
BIN=$K8S_HOME/bin
RUN=$K8S_HOME/run
KC=$RUN/kubeconfig
BRIDGE=k8slocal0
BRIDGE_IP=10.244.0.1
API_PORT=16443
WEBHOOK_PORT=19443
METRICS_PORT=10350
# Go from its tarball's place when it is not on PATH (as scripts/install-deploy-tools.sh finds it)
command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || PATH=$PATH:/usr/local/go/bin
export GOPATH=$K8S_HOME/go GOMODCACHE=$K8S_HOME/go/pkg/mod GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }
kubectl() { "$BIN/kubectl" --kubeconfig "$KC" "$@"; }
ctr_() { ctr --address "$RUN/containerd.sock" -n k8s.io "$@"; }

need() {  # command... : each must be on PATH
  local missing=""
  for c in "$@"; do command -v "$c" >/dev/null || missing="$missing $c"; done
  [ -z "$missing" ] || die "missing:$missing (apt-get install containerd containernetworking-plugins runc iptables gcc podman openssl; Go >= 1.24)"
}

# --- build -------------------------------------------------------------------------------------------------------
module_dir() {  # module version dest: a writable copy of a module's source from the Go module proxy
  local dir
  dir=$(go mod download -json "$1@$2" | python3 -c "import json,sys; print(json.load(sys.stdin)['Dir'])")
  rm -rf "$3"; mkdir -p "$(dirname "$3")"; cp -r "$dir" "$3"; chmod -R u+w "$3"
}

built() {  # component version: true if $BIN/VERSIONS says the component was built at that version
  grep -qx "$1 $2" "$BIN/VERSIONS" 2>/dev/null
}

record() {  # component version
  touch "$BIN/VERSIONS"
  { grep -v "^$1 " "$BIN/VERSIONS" || true; echo "$1 $2"; } > "$BIN/VERSIONS.new"
  mv "$BIN/VERSIONS.new" "$BIN/VERSIONS"
}

build() {
  need go gcc python3
  mkdir -p "$BIN"
  local t0 before; t0=$(date +%s); before=$(cat "$BIN/VERSIONS" 2>/dev/null || true)
  if ! built kubernetes "$K8S_VERSION"; then
    say "building Kubernetes $K8S_VERSION (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl; ~3-5 min)"
    local src=$K8S_HOME/src/kubernetes
    module_dir k8s.io/kubernetes "$K8S_VERSION" "$src"
    # the staging modules are published separately as k8s.io/<name> v0.<minor>.<patch>
    local staged=${K8S_VERSION/v1./v0.}
    ( cd "$src"
      for m in $(grep "=> ./staging" go.mod | awk '{print $1}'); do go mod edit -replace "$m=$m@$staged"; done
      # the version the binaries report: without it the server says v0.0.0 and helm refuses a chart's kubeVersion
      local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}; local flags=""
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags="$flags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
      done
      go build -ldflags "$flags" -o "$BIN/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler \
        ./cmd/kubelet ./cmd/kube-proxy ./cmd/kubectl )
    record kubernetes "$K8S_VERSION"
  fi
  if ! built etcd "$ETCD_VERSION"; then
    say "building etcd $ETCD_VERSION"
    local src=$K8S_HOME/src/etcd
    module_dir go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$src"
    ( cd "$src"
      # the server module's ../ replaces, pointed at the published modules
      for m in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
        go mod edit -dropreplace "$m" -replace "$m=$m@$ETCD_VERSION"
      done
      go mod edit -dropreplace go.etcd.io/etcd -dropreplace go.etcd.io/tests/v3
      go build -o "$BIN/etcd" . )
    record etcd "$ETCD_VERSION"
  fi
  if ! built coredns "$COREDNS_VERSION"; then
    say "building CoreDNS $COREDNS_VERSION"
    CGO_ENABLED=0 GOBIN=$BIN go install "github.com/coredns/coredns@$COREDNS_VERSION"
    record coredns "$COREDNS_VERSION"
  fi
  if ! built metrics-server "$METRICS_SERVER_VERSION"; then
    say "building metrics-server $METRICS_SERVER_VERSION"
    CGO_ENABLED=0 GOBIN=$BIN go install "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
    record metrics-server "$METRICS_SERVER_VERSION"
  fi
  if ! built kserve "$KSERVE_VERSION"; then
    say "building the KServe controller $KSERVE_VERSION (~2-3 min)"
    local src=$K8S_HOME/src/kserve
    module_dir github.com/kserve/kserve "$KSERVE_VERSION" "$src"
    ( cd "$src" && go build -o "$BIN/kserve-manager" ./cmd/manager )
    record kserve "$KSERVE_VERSION"
  fi
  if ! built pause 1; then
    # the pod sandbox's image: a static 20-line program in a FROM scratch image (no registry to pull one from)
    say "building the pause program"
    cat > "$K8S_HOME/pause.c" <<'EOF'
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static void down(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0}; a.sa_handler = down; sigaction(SIGINT, &a, 0); sigaction(SIGTERM, &a, 0);
  struct sigaction r = {0}; r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, 0);
  for (;;) pause();
}
EOF
    gcc -static -O2 -o "$BIN/pause" "$K8S_HOME/pause.c"
    record pause 1
  fi
  # runc behind a wrapper that turns a negative oom_score_adj into 0: this host refuses negative values, and
  # the CRI gives the pod sandbox -998 (runc then dies with "can't get final child's PID from pipe")
  cat > "$BIN/runc-wrap" <<'EOF'
#!/bin/sh
bundle=""; prev=""
for a in "$@"; do
  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle="$a"; fi
  case "$a" in --bundle=*) bundle="${a#--bundle=}";; esac
  prev="$a"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); pr = c.get("process") or {}
if pr.get("oomScoreAdj", 0) < 0:
    pr["oomScoreAdj"] = 0; json.dump(c, open(p, "w"))
PY
fi
exec "$(command -v runc)" "$@"
EOF
  chmod +x "$BIN/runc-wrap"
  # the sums are written when something was built, and checked otherwise
  if [ "$(cat "$BIN/VERSIONS")" != "$before" ] || [ ! -f "$BIN/SHA256SUMS" ]; then
    ( cd "$BIN" && sha256sum kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd \
        coredns metrics-server kserve-manager pause runc-wrap > SHA256SUMS )
  else
    ( cd "$BIN" && sha256sum --quiet -c SHA256SUMS ) \
      || die "the binaries in $BIN differ from their SHA256SUMS (remove $BIN/VERSIONS to rebuild them)"
  fi
  say "binaries in $BIN (versions: $BIN/VERSIONS, sha256: $BIN/SHA256SUMS; $(( $(date +%s) - t0 )) s)"
}

# --- up ----------------------------------------------------------------------------------------------------------
start() {  # name command...: in the background, its pid in $RUN/<name>.pid, its output in $RUN/<name>.log
  local name=$1; shift
  "$@" > "$RUN/$name.log" 2>&1 &
  echo $! > "$RUN/$name.pid"
}

running() {  # name: true if the process this script started under that name still runs
  [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null
}

wait_for() {  # seconds description command...
  local n=$1 what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "$what not ready in ${n}s (logs in $RUN; \`bash scripts/cluster.sh down\` cleans up)"
}

kube_chains() {  # the iptables/ip6tables chains named KUBE-* (kube-proxy's and the kubelet's)
  local ipt table
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      "$ipt" -t "$table" -S 2>/dev/null | awk -v t="$ipt/$table" '/^-N KUBE-/ {print t, $2}'
    done
  done
}

# kernel settings the kubelet and kube-proxy change (the kubelet's "kernel tunables", kube-proxy's
# route_localnet and bridge-nf-call-iptables): saved by `up`, put back by `down`
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
net.bridge.bridge-nf-call-ip6tables net.ipv4.ip_forward"

up() {
  [ "$(id -u)" = 0 ] || die "needs root (bridge, iptables, containerd)"
  need containerd ctr runc iptables podman openssl ip curl
  [ -x /usr/lib/cni/bridge ] || die "missing the CNI plugins (apt-get install containernetworking-plugins)"
  if [ -f "$RUN/up.done" ] && running apiserver && running kubelet; then say "already up"; env_; return 0; fi
  [ ! -e "$RUN" ] || die "$RUN is left from an earlier or unfinished \`up\`: \`bash scripts/cluster.sh down\` first"
  # refuse to share the host with another cluster: `down` removes the KUBE-* chains and the bridge
  [ -z "$(kube_chains)" ] || die "iptables already has KUBE-* chains (another cluster on this machine?): not starting"
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "the bridge $BRIDGE exists already (another cluster?): not starting"
  build
  local t0 s v; t0=$(date +%s)
  mkdir -p "$RUN/cni" "$RUN/certs" "$RUN/manifests" "$RUN/volumes"
  for s in $SYSCTLS; do v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"; done > "$RUN/sysctl.saved" || true
  openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
  openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null
  local token; token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  ( umask 077
    echo "$token,admin,admin,system:masters" > "$RUN/tokens.csv"
    cat > "$KC" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://$BRIDGE_IP:$API_PORT", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
EOF
  )
  # the aggregation layer's front proxy: the API server forwards metrics.k8s.io to metrics-server with this client
  # certificate, and metrics-server trusts the users it names (the HPA controller's) through this CA
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=front-proxy-ca" \
    -keyout "$RUN/front-proxy-ca.key" -out "$RUN/front-proxy-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=front-proxy-client" \
    -keyout "$RUN/front-proxy-client.key" -out "$RUN/front-proxy-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$RUN/front-proxy-client.ext"
  openssl x509 -req -in "$RUN/front-proxy-client.csr" -CA "$RUN/front-proxy-ca.crt" -CAkey "$RUN/front-proxy-ca.key" \
    -CAcreateserial -days 30 -extfile "$RUN/front-proxy-client.ext" -out "$RUN/front-proxy-client.crt" 2>/dev/null
  # the pod network's bridge, made before the API server: the `kubernetes` Service cannot point at 127.0.0.1,
  # so the API server binds to the bridge's address, which the pods reach
  say "bridge $BRIDGE ($BRIDGE_IP/24, no uplink)"
  ip link add "$BRIDGE" type bridge
  touch "$RUN/bridge.ours"
  ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  say "etcd $ETCD_VERSION, kube-apiserver $K8S_VERSION"
  start etcd "$BIN/etcd" --data-dir "$RUN/etcd" --listen-client-urls http://127.0.0.1:12379 \
    --advertise-client-urls http://127.0.0.1:12379 --listen-peer-urls http://127.0.0.1:12380 \
    --initial-advertise-peer-urls http://127.0.0.1:12380 --initial-cluster default=http://127.0.0.1:12380
  start apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:12379 --bind-address=$BRIDGE_IP \
    --advertise-address=$BRIDGE_IP --secure-port=$API_PORT --cert-dir="$RUN/certs" --token-auth-file="$RUN/tokens.csv" \
    --authorization-mode=RBAC --service-account-key-file="$RUN/sa.pub" --service-account-signing-key-file="$RUN/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
    --kubelet-preferred-address-types=Hostname --enable-aggregator-routing=true \
    --requestheader-client-ca-file="$RUN/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- --proxy-client-cert-file="$RUN/front-proxy-client.crt" \
    --proxy-client-key-file="$RUN/front-proxy-client.key"
  wait_for 90 kube-apiserver kubectl get --raw /readyz
  # containerd with its own state and socket (not the system's), the CNI bridge, runc behind the wrapper
  say "containerd (CRI on $RUN/containerd.sock)"
  containerd config default > "$RUN/containerd.toml"
  sed -i -e "s#^root = .*#root = \"$RUN/containerd-root\"#" -e "s#^state = .*#state = \"$RUN/containerd-state\"#" \
    -e "s#address = \"/run/containerd/containerd.sock\"#address = \"$RUN/containerd.sock\"#" \
    -e "s#path = \"/opt/containerd\"#path = \"$RUN/containerd-opt\"#" \
    -e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$RUN/cni\"#" \
    -e "s#sandbox_image = .*#sandbox_image = \"localhost/pause:local\"#" \
    -e "s#BinaryName = \"\"#BinaryName = \"$BIN/runc-wrap\"#" "$RUN/containerd.toml"
  grep -q "BinaryName = \"$BIN/runc-wrap\"" "$RUN/containerd.toml" || die "could not set containerd's runc wrapper"
  cat > "$RUN/cni/10-bridge.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "local", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$RUN/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  start containerd containerd --config "$RUN/containerd.toml"
  wait_for 30 containerd ctr --address "$RUN/containerd.sock" version
  # the pause and CoreDNS images, FROM scratch around the binaries built here
  local prog ctx
  for prog in pause coredns; do
    ctx=$K8S_HOME/images/$prog; mkdir -p "$ctx"; cp "$BIN/$prog" "$ctx/"
    printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$prog" "$prog" "$prog" > "$ctx/Containerfile"
    podman build -q -t "localhost/$prog:local" "$ctx" >/dev/null
    load "localhost/$prog:local"
  done
  say "kubelet, scheduler, controller-manager, kube-proxy"
  cat > "$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
staticPodPath: $RUN/manifests
containerRuntimeEndpoint: unix://$RUN/containerd.sock
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
localStorageCapacityIsolation: false
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
EOF
  # the node is named localhost: the kubelet refuses a loopback node IP, and the API server reaches the kubelet
  # (logs, exec, port-forward) by that hostname (--kubelet-preferred-address-types=Hostname)
  start kubelet "$BIN/kubelet" --kubeconfig "$KC" --config "$RUN/kubelet.yaml" --root-dir "$RUN/kubelet" \
    --hostname-override localhost
  start scheduler "$BIN/kube-scheduler" --kubeconfig "$KC" --bind-address 127.0.0.1 --secure-port 10259
  start controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KC" --bind-address 127.0.0.1 \
    --secure-port 10257 --service-account-private-key-file "$RUN/sa.key" --root-ca-file "$RUN/certs/apiserver.crt" \
    --use-service-account-credentials=true --controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle' \
    --horizontal-pod-autoscaler-downscale-stabilization=30s
  start proxy "$BIN/kube-proxy" --kubeconfig "$KC" --hostname-override localhost --bind-address 127.0.0.1 \
    --cluster-cidr 10.244.0.0/16 --proxy-mode iptables --metrics-bind-address 127.0.0.1:10249 \
    --healthz-bind-address 127.0.0.1:10256
  wait_for 120 "node localhost" sh -c "'$BIN/kubectl' --kubeconfig '$KC' get node localhost -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  # the kubelet cannot read the disk's stats here and advertises no ephemeral-storage: pods that request it
  # (the chart's and the manifests' do) would stay Pending
  kubectl patch node localhost --subresource=status --type=merge \
    -p '{"status":{"capacity":{"ephemeral-storage":"40Gi"},"allocatable":{"ephemeral-storage":"40Gi"}}}' >/dev/null
  say "cluster DNS (CoreDNS $COREDNS_VERSION)"
  kubectl apply -f "$HERE/coredns.yaml" >/dev/null
  wait_for 120 "cluster DNS" kubectl -n kube-system rollout status deploy/coredns --timeout=5s
  metrics_server
  touch "$RUN/up.done"
  say "up in $(( $(date +%s) - t0 )) s"
  env_
}

env_() { echo "export KUBECONFIG=$KC"; }

# metrics-server, out of cluster like KServe's controller: it reads the kubelet's resource metrics on
# localhost:10250 and serves metrics.k8s.io on the bridge's address, where the API server's aggregation layer
# reaches it (an Endpoints object cannot name a loopback address). The HPAs get their CPU figures from it.
metrics_server() {
  say "metrics-server $METRICS_SERVER_VERSION"
  mkdir -p "$RUN/metrics-server"
  start metrics-server "$BIN/metrics-server" --kubeconfig "$KC" --authentication-kubeconfig "$KC" \
    --authorization-kubeconfig "$KC" --bind-address "$BRIDGE_IP" --secure-port "$METRICS_PORT" \
    --cert-dir "$RUN/metrics-server" --kubelet-insecure-tls --kubelet-preferred-address-types Hostname \
    --metric-resolution 15s
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec: {ports: [{name: https, port: 443, targetPort: $METRICS_PORT, protocol: TCP}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-server, namespace: kube-system}
subsets: [{addresses: [{ip: $BRIDGE_IP}], ports: [{name: https, port: $METRICS_PORT, protocol: TCP}]}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec: {service: {name: metrics-server, namespace: kube-system, port: 443}, group: metrics.k8s.io, version: v1beta1,
       insecureSkipTLSVerify: true, groupPriorityMinimum: 100, versionPriority: 100}
EOF
  wait_for 120 "metrics-server" kubectl top node localhost
}

# --- images ------------------------------------------------------------------------------------------------------
load() {  # podman images into the cluster's containerd, k8s.io namespace (pods use them with imagePullPolicy: Never)
  [ -S "$RUN/containerd.sock" ] || die "the cluster is not up"
  [ $# -gt 0 ] || die "usage: cluster.sh load IMAGE..."
  local image tar
  for image in "$@"; do
    tar=$(mktemp "$K8S_HOME/image.XXXXXX")
    podman save --format docker-archive -o "$tar" "$image" >/dev/null 2>&1 || { rm -f "$tar"; die "podman save $image failed"; }
    ctr_ images import "$tar" >/dev/null || { rm -f "$tar"; die "ctr import $image failed"; }
    rm -f "$tar"
    case "$image" in localhost/pause:local|localhost/coredns:local) ;; *) say "loaded $image" ;; esac
  done
}

# --- KServe ------------------------------------------------------------------------------------------------------
kserve() {
  running apiserver || die "the cluster is not up (bash scripts/cluster.sh up)"
  built kserve "$KSERVE_VERSION" || build
  local src=$K8S_HOME/src/kserve/config t0; t0=$(date +%s)
  say "KServe $KSERVE_VERSION: CRDs, inferenceservice-config (Standard mode)"
  kubectl create namespace kserve --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply --server-side --force-conflicts -k "$src/crd/full" >/dev/null
  wait_for 60 "KServe's CRDs" kubectl wait --for=condition=Established --timeout=5s crd/inferenceservices.serving.kserve.io
  sed '/^  deploy: |-$/,/^    }$/ s/"defaultDeploymentMode": "Serverless"/"defaultDeploymentMode": "Standard"/' \
    "$src/configmap/inferenceservice.yaml" > "$RUN/inferenceservice-config.yaml"
  grep -q '^      "defaultDeploymentMode": "Standard"$' "$RUN/inferenceservice-config.yaml" \
    || die "could not set Standard mode in KServe's inferenceservice-config"
  kubectl apply --server-side --force-conflicts -f "$RUN/inferenceservice-config.yaml" >/dev/null
  # The controller runs out of cluster. Its webhooks are required (the pod mutator mounts pvc:// models at
  # /mnt/models: without it the pods find no model): served with a certificate made here, registered by URL.
  # controller-runtime reads the certificate from $TMPDIR/k8s-webhook-server/serving-certs.
  local certs=$RUN/kserve-tmp/k8s-webhook-server/serving-certs
  if ! running kserve; then
    mkdir -p "$certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
      -keyout "$certs/tls.key" -out "$certs/tls.crt" 2>/dev/null
    say "KServe controller (webhooks on port $WEBHOOK_PORT)"
    TMPDIR=$RUN/kserve-tmp POD_NAMESPACE=kserve start kserve "$BIN/kserve-manager" -kubeconfig "$KC" \
      -webhook-port "$WEBHOOK_PORT" -metrics-addr 127.0.0.1:18080 -health-probe-addr 127.0.0.1:18081
  fi
  wait_for 90 "KServe controller" curl -sf http://127.0.0.1:18081/readyz
  wait_for 30 "KServe webhooks" curl -sk -o /dev/null "https://127.0.0.1:$WEBHOOK_PORT/"
  python3 "$HERE/kserve-webhooks.py" "$src/webhook/manifests.yaml" "$certs/tls.crt" \
    "https://127.0.0.1:$WEBHOOK_PORT" > "$RUN/kserve-webhooks.yaml"
  kubectl apply -f "$RUN/kserve-webhooks.yaml" >/dev/null
  say "KServe ready in $(( $(date +%s) - t0 )) s"
}

# --- status, down ------------------------------------------------------------------------------------------------
NAMES="etcd apiserver containerd kubelet scheduler controller-manager proxy metrics-server kserve"

status() {
  local name
  [ -d "$RUN" ] || { echo "down (no $RUN)"; return 0; }
  for name in $NAMES; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: not running"; fi
  done
  if running apiserver; then
    env_
    kubectl get nodes 2>&1 || true
    kubectl get pods -A -o wide 2>&1 || true
  fi
}

stop() {  # name...: TERM, then KILL after 10 s, each process this script started (by its pid file)
  local name pid left
  for name in "$@"; do
    if [ -f "$RUN/$name.pid" ]; then kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 10); do
    left=""
    for name in "$@"; do if running "$name"; then left=1; fi; done
    [ -n "$left" ] || break
    sleep 1
  done
  for name in "$@"; do
    [ -f "$RUN/$name.pid" ] || continue
    pid=$(cat "$RUN/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then say "killing $name (pid $pid)"; kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$RUN/$name.pid"
  done
}

down() {
  [ -d "$RUN" ] || { say "nothing to stop ($RUN does not exist)"; return 0; }
  say "stopping KServe, metrics-server, the scheduler, the controller-manager"
  stop kserve metrics-server controller-manager scheduler
  if running apiserver && running kubelet; then
    # the pods, deleted while the kubelet still runs: it stops their sandboxes through the CRI, so the CNI
    # releases their addresses and network namespaces (nothing recreates them now)
    say "deleting the pods"
    kubectl delete pods --all --all-namespaces --grace-period=5 --timeout=60s >/dev/null 2>&1 || true
  fi
  say "stopping the kubelet, kube-proxy"
  stop kubelet proxy
  local t pid ipt table rule chain m line
  if [ -S "$RUN/containerd.sock" ] && running containerd; then
    # the pods' containers, through containerd, by their ids
    say "removing the pods' containers"
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 2
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$t" >/dev/null 2>&1 || true; done
  fi
  stop containerd apiserver etcd
  # containerd's shims that outlived it: each names our containerd's socket on its command line
  for pid in $(pgrep -f "containerd-shim.*-address $RUN/containerd.sock" 2>/dev/null || true); do
    say "killing a leftover shim (pid $pid)"; kill -9 "$pid" 2>/dev/null || true
  done
  # the iptables rules kube-proxy and the kubelet wrote: the jumps into KUBE-* chains from other chains, then
  # the KUBE-* chains themselves (`up` refuses to start when any existed before it)
  say "removing the KUBE-* iptables chains and the jumps to them"
  if [ -x "$BIN/kube-proxy" ]; then "$BIN/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true; fi
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      { "$ipt" -t "$table" -S 2>/dev/null || true; } | { grep -E '^-A [^ ]+ .*-j KUBE-' || true; } \
        | { grep -Ev '^-A KUBE-' || true; } | while read -r rule; do
        eval "$ipt -t $table ${rule/-A /-D }" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
  # mounts under the run directory (containerd's snapshots and shm, the kubelet's volumes), deepest first
  { grep -o " $RUN/[^ ]*" /proc/mounts || true; } | sed 's/^ //' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ -f "$RUN/bridge.ours" ]; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
  if [ -f "$RUN/sysctl.saved" ]; then
    while read -r line; do sysctl -q -w "$line" >/dev/null 2>&1 || true; done < "$RUN/sysctl.saved"
  fi
  rm -rf "$RUN"
  say "down"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  kserve) kserve ;;
  load) shift; load "$@" ;;
  status) status ;;
  env) env_ ;;
  down) down ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
