#!/usr/bin/env bash
# containerd-config.sh DIR [CERTS_DIR] writes a self-contained containerd 2.x
# configuration under DIR and prints its path.
#
# Everything containerd owns (root, state, sockets, CNI config and IPAM state)
# lives under DIR, so several instances can run side by side and a test can
# remove all traces with DIR. The socket is DIR/containerd.sock. CERTS_DIR
# (default DIR/certs.d) is where imgreg -certs-dir writes its mirror files.
#
# Settings that matter here:
#   - cgroupfs driver (SystemdCgroup = false): there is no systemd.
#   - restrict_oom_score_adj: there is no CAP_SYS_RESOURCE on these machines,
#     so a negative oom_score_adj from kubelet would fail every pod.
#   - the sandbox image is pinned to registry.k8s.io/pause:3.10.1, which
#     imgreg serves.
#   - the CRI stream server listens on 127.0.0.1 on a free port.
# Needs the binaries from containerd.sh; runc is referenced by path.
source "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 DIR [CERTS_DIR]"
root=$(mkdir -p "$1" && cd "$1" && pwd)
certs=${2:-$root/certs.d}
bin=$("$TOOLS_DIR/containerd.sh")
mkdir -p "$root/cni/net.d" "$certs"

# A bridge and subnet of our own: the bridge name is at most 15 bytes and the
# subnet is derived from DIR so two instances do not collide.
h=$(printf '%s' "$root" | cksum | cut -d' ' -f1)
bridge=ctd$((h % 1000000))
subnet=10.$((200 + h % 50)).$((h / 50 % 250)).0/24
cat >"$root/cni/net.d/10-containerd.conflist" <<EOC
{
  "cniVersion": "1.0.0",
  "name": "containerd-$((h % 1000000))",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$root/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOC
echo "$bridge" >"$root/cni/bridge"

cfg=$root/containerd.toml
cat >"$cfg" <<EOC
version = 3
root = "$root/root"
state = "$root/state"

[grpc]
  address = "$root/containerd.sock"
[ttrpc]
  address = "$root/containerd.sock.ttrpc"
[debug]
  address = "$root/containerd-debug.sock"
  level = "info"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$bin/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$root/cni/net.d"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.1"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$certs"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.nri.v1.nri"]
  socket_path = "$root/nri.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$root/opt"
EOC
echo "$cfg"
