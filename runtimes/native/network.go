package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
)

// network sets up pod networks with libcni and the configuration found in
// confDir (the first file in name order, as kubelet's other runtimes do).
type network struct {
	confDir string
	bin     []string
	cache   string
}

func newNetwork(confDir string, bin []string, cache string) *network {
	return &network{confDir: confDir, bin: bin, cache: cache}
}

// config loads the network configuration list, re-read on every use so
// that a configuration dropped in later takes effect without a restart.
func (n *network) config() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.confDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("CNI configuration in %s: %w", n.confDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CNI configuration in %s", n.confDir)
	}
	sort.Strings(files)
	f := files[0]
	if bytes.HasSuffix([]byte(f), []byte(".conflist")) {
		l, err := libcni.ConfListFromFile(f)
		if err != nil {
			return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
		}
		return l, nil
	}
	c, err := libcni.ConfFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
	}
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
	}
	return l, nil
}

func (n *network) rt(id, nsPath string, cfg *runtimeapi.PodSandboxConfig) *libcni.RuntimeConf {
	md := cfg.GetMetadata()
	return &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       nsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", md.GetNamespace()},
			{"K8S_POD_NAME", md.GetName()},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", md.GetUid()},
		},
	}
}

// add attaches the pod's network namespace and returns its IPs, the first
// one being the pod IP.
func (n *network) add(ctx context.Context, x invoke.Exec, id, nsPath string, cfg *runtimeapi.PodSandboxConfig) ([]string, error) {
	l, err := n.config()
	if err != nil {
		return nil, err
	}
	c := libcni.NewCNIConfigWithCacheDir(n.bin, n.cache, x)
	res, err := c.AddNetworkList(ctx, l, n.rt(id, nsPath, cfg))
	if err != nil {
		return nil, fmt.Errorf("CNI network %s for pod %s: %w", l.Name, id, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI network %s for pod %s: result: %w", l.Name, id, err)
	}
	var ips []string
	for _, ip := range r.IPs {
		ips = append(ips, ip.Address.IP.String())
	}
	return ips, nil
}

// del detaches the pod; nsPath may be "" once the namespace is gone.
func (n *network) del(ctx context.Context, x invoke.Exec, id, nsPath string, cfg *runtimeapi.PodSandboxConfig) error {
	l, err := n.config()
	if err != nil {
		return err
	}
	c := libcni.NewCNIConfigWithCacheDir(n.bin, n.cache, x)
	if err := c.DelNetworkList(ctx, l, n.rt(id, nsPath, cfg)); err != nil {
		return fmt.Errorf("CNI network %s for pod %s: delete: %w", l.Name, id, err)
	}
	return nil
}

// pluginExec runs CNI plugins through the agent's spawner and reaper:
// libcni's default runs them with os/exec, whose Wait would race the
// agent's wait4(-1) loop.
type pluginExec struct{ b *Backend }

var _ invoke.Exec = pluginExec{}

func (x pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	res, err := x.b.run(ctx, &proc.Spec{Path: path, Argv: []string{path}, Env: environ}, stdin)
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		return nil, fmt.Errorf("CNI plugin %s: %w", path, ctx.Err())
	}
	if res.Exit.Code() != 0 {
		var e types.Error
		if json.Unmarshal(res.Stdout, &e) == nil && (e.Msg != "" || e.Code != 0) {
			return nil, &e
		}
		return nil, fmt.Errorf("CNI plugin %s: %s: %s", path, res.Exit, bytes.TrimSpace(res.Stderr))
	}
	if len(res.Stderr) > 0 {
		x.b.log.Debug("CNI plugin stderr", "plugin", path, "stderr", string(res.Stderr))
	}
	return res.Stdout, nil
}

func (pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (pluginExec) Decode(b []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(b)
}

var errNoHolder = errors.New("pod has no namespace holder")

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
