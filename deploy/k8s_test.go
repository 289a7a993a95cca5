package deploy_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// kustomize finds the kustomize binary: $KUSTOMIZE (make test-go sets it to
// the pinned one), else the pinned one in .tools/bin, else PATH. Missing is a failure, not a skip:
// these files would otherwise go untested.
func kustomize(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("KUSTOMIZE"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("KUSTOMIZE=%s: %v; run `make tools` to install the pinned kustomize into .tools/bin", bin, err)
		}
		return bin
	}
	if bin, err := filepath.Abs("../.tools/bin/kustomize"); err == nil {
		if _, err := os.Stat(bin); err == nil {
			return bin // make tools' pinned one, for a plain go test ./...
		}
	}
	bin, err := exec.LookPath("kustomize")
	if err != nil {
		t.Fatal("kustomize not found: run `make tools` (installs the pinned version into .tools/bin), " +
			"then `make test-go`, or set KUSTOMIZE=/path/to/kustomize")
	}
	return bin
}

// render runs kustomize build on dir and returns the objects by kind.
func render(t *testing.T, dir string) map[string][]*yaml.Node {
	t.Helper()
	cmd := exec.Command(kustomize(t), "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	objects := map[string][]*yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kustomize build %s: output is not YAML: %v", dir, err)
		}
		var head struct{ Kind string }
		if err := doc.Decode(&head); err != nil {
			t.Fatal(err)
		}
		objects[head.Kind] = append(objects[head.Kind], &doc)
	}
	return objects
}

// one decodes the only object of kind into v.
func one(t *testing.T, objects map[string][]*yaml.Node, kind string, v any) {
	t.Helper()
	if n := len(objects[kind]); n != 1 {
		t.Fatalf("want one %s, got %d", kind, n)
	}
	if err := objects[kind][0].Decode(v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

type meta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a port name or number
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type keyToPath struct{ Key, Path string }

type deployment struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Replicas *int     `yaml:"replicas"`
		Selector selector `yaml:"selector"`
		Template struct {
			Metadata meta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				TopologySpreadConstraints []struct {
					LabelSelector selector `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string      `yaml:"secretName"`
						Items      []keyToPath `yaml:"items"`
					} `yaml:"secret"`
					ConfigMap *struct {
						Name  string      `yaml:"name"`
						Items []keyToPath `yaml:"items"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		MaxUnavailable any      `yaml:"maxUnavailable"`
		MinAvailable   any      `yaml:"minAvailable"`
		Selector       selector `yaml:"selector"`
	} `yaml:"spec"`
}

type hpa struct {
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
	} `yaml:"spec"`
}

// rendered is one kustomize output, decoded, with consentd's config as the
// pod would load it.
type rendered struct {
	deploy     deployment
	container  container
	cfg        config.Config
	configMaps map[string]map[string]string // name -> key -> value
	secrets    map[string]map[string]string // name -> key -> decoded value
	hpa        hpa
	pdb        pdb
	listeners  listeners
	ports      map[string]int     // container port name -> number
	services   map[string]service // by name
	ingresses  []ingress
	policy     admitted
}

// checkRendered checks what the base and every overlay must satisfy, and
// returns the decoded objects for checks of their own.
func checkRendered(t *testing.T, objects map[string][]*yaml.Node) rendered {
	t.Helper()
	var r rendered
	one(t, objects, "Deployment", &r.deploy)
	pod := r.deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "consentd" {
		t.Fatalf("Deployment: want one container named consentd, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	r.container = c

	// Settings: real ones, and consentd accepts them (with the image's own
	// environment underneath, as at run time).
	stages := parseDockerfile(t, "Dockerfile")
	env := resolve(t, stages, stages[len(stages)-1].name).env
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil:
			env[e.Name] = placeholderFromSecret
		default:
			env[e.Name] = e.Value
		}
	}
	r.cfg = load(t, "Deployment consentd", c.Args, env, "")

	// Ports and probes: one named container port per listener, each the
	// port consentd listens on, all on 0.0.0.0.
	ls := listenerPorts(t, "Deployment", c.Args, env, r.cfg, true)
	r.listeners = ls
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	r.ports = ports
	if want := ls.byName(); !maps.Equal(ports, want) {
		t.Errorf("Deployment: container ports %v; consentd listens on %v", ports, want)
	}
	resolvePort := func(p any) int { return resolvePort(ports, p) }
	// Every probe on the admin port: it never asks for a client certificate,
	// and the internal ports may (mTLS), which the kubelet cannot answer.
	for _, pr := range []struct {
		name, path string
		probe      *probe
	}{{"startupProbe", "/healthz", c.StartupProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path || resolvePort(pr.probe.HTTPGet.Port) != ls.admin || ls.admin == 0 {
			got := "none"
			if pr.probe != nil && pr.probe.HTTPGet != nil {
				got = fmt.Sprintf("httpGet %s on %v", pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port)
			}
			t.Errorf("Deployment: %s is %s; want httpGet %s on the admin port (%d)", pr.name, got, pr.path, ls.admin)
		}
	}
	// A draining pod must read not ready before its drain delay ends.
	if rp := c.ReadinessProbe; rp != nil {
		if notices := time.Duration(orDefault(rp.PeriodSeconds, 10)*orDefault(rp.FailureThreshold, 3)) * time.Second; notices > r.cfg.DrainDelay {
			t.Errorf("Deployment: readinessProbe notices a drain after up to %s (periodSeconds x failureThreshold); --drain-delay is %s", notices, r.cfg.DrainDelay)
		}
	}
	if a := r.deploy.Spec.Template.Metadata.Annotations["prometheus.io/port"]; a != "" && a != strconv.Itoa(ls.admin) {
		t.Errorf("Deployment: prometheus.io/port %s; /metrics is on the admin port %d", a, ls.admin)
	}

	// Non-root, read-only, bounded.
	sc := pod.SecurityContext
	if !(isTrue(sc.RunAsNonRoot) || isTrue(c.SecurityContext.RunAsNonRoot)) || (sc.RunAsUser != nil && *sc.RunAsUser == 0) {
		t.Error("Deployment: want runAsNonRoot: true and a non-zero runAsUser")
	}
	if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("Deployment: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("Deployment: want cpu and memory requests and a memory limit, got %+v", c.Resources)
	}
	// consentd's collector is lazy (GOGC 200): the soft limit must sit
	// below the container's limit, or the kernel kills it first.
	if limit, soft := mebibytes(c.Resources.Limits["memory"]), mebibytes(envValue(c, "GOMEMLIMIT")); soft <= 0 || soft >= limit {
		t.Errorf("Deployment: GOMEMLIMIT %q must be set below the memory limit %q", envValue(c, "GOMEMLIMIT"), c.Resources.Limits["memory"])
	}

	// Kubernetes' SIGKILL must not cut the drain and in-flight calls short.
	// The grace period also runs through a preStop hook, if there is one.
	need := r.cfg.DrainDelay + r.cfg.ShutdownTimeout
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		t.Errorf("Deployment: terminationGracePeriodSeconds %s; want at least preStop + --drain-delay + --shutdown-timeout = %s", intOrUnset(g), need)
	}

	// Everything that selects the pods selects these labels.
	labels := r.deploy.Spec.Template.Metadata.Labels
	one(t, objects, "PodDisruptionBudget", &r.pdb)
	one(t, objects, "HorizontalPodAutoscaler", &r.hpa)
	for what, sel := range map[string]map[string]string{
		"Deployment selector": r.deploy.Spec.Selector.MatchLabels,
		"PDB selector":        r.pdb.Spec.Selector.MatchLabels,
	} {
		if !selects(sel, labels) {
			t.Errorf("%s %v does not select the pods (labels %v)", what, sel, labels)
		}
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		if !selects(tsc.LabelSelector.MatchLabels, labels) {
			t.Errorf("topologySpreadConstraints selector %v does not select the pods", tsc.LabelSelector.MatchLabels)
		}
	}
	if ref := r.hpa.Spec.ScaleTargetRef; ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != r.deploy.Metadata.Name {
		t.Errorf("HPA scales %+v, not the Deployment %s", ref, r.deploy.Metadata.Name)
	}
	if r.deploy.Spec.Replicas != nil {
		t.Error("Deployment: replicas is set; the HPA owns the count (every apply would reset it)")
	}
	if mu, ok := r.pdb.Spec.MaxUnavailable.(int); !ok || mu < 1 || mu >= r.hpa.Spec.MinReplicas {
		t.Errorf("PDB maxUnavailable %v with HPA minReplicas %d: want at least 1 (drains can proceed) and fewer than minReplicas", r.pdb.Spec.MaxUnavailable, r.hpa.Spec.MinReplicas)
	}

	// Services, Ingresses and the NetworkPolicy: each audience's port, and
	// only that one, reaches it.
	r.services = checkServices(t, objects, labels, ports, ls)
	r.ingresses = checkIngresses(t, objects, r.services)
	r.policy = checkNetworkPolicy(t, objects, labels, ports, ls)

	// The files consentd reads are the ConfigMap's and the Secret's.
	r.configMaps, r.secrets = map[string]map[string]string{}, map[string]map[string]string{}
	for _, n := range objects["ConfigMap"] {
		var cm struct {
			Metadata meta              `yaml:"metadata"`
			Data     map[string]string `yaml:"data"`
		}
		if err := n.Decode(&cm); err != nil {
			t.Fatal(err)
		}
		r.configMaps[cm.Metadata.Name] = cm.Data
	}
	for _, n := range objects["Secret"] {
		var s struct {
			Metadata meta              `yaml:"metadata"`
			Data     map[string]string `yaml:"data"`
		}
		if err := n.Decode(&s); err != nil {
			t.Fatal(err)
		}
		r.secrets[s.Metadata.Name] = map[string]string{}
		for k, v := range s.Data {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("Secret %s: %s: %v", s.Metadata.Name, k, err)
			}
			r.secrets[s.Metadata.Name][k] = string(raw)
		}
	}
	files := mountedFiles(t, r)
	policy, ok := files[r.cfg.PolicyPath]
	if !ok || !strings.HasPrefix(policy.source, "ConfigMap") {
		t.Errorf("--policy %s is not a ConfigMap's file in the pod; mounted: %v", r.cfg.PolicyPath, keysOf(files))
	} else if _, err := domain.ParsePolicy([]byte(policy.content)); err != nil {
		t.Errorf("--policy %s (%s): consentd refuses it: %v", r.cfg.PolicyPath, policy.source, err)
	}
	for setting, p := range map[string]string{"--keys-file": r.cfg.KeysFile, "--api-keys-file": r.cfg.APIKeysFile} {
		if f, ok := files[p]; !ok || !strings.HasPrefix(f.source, "Secret") {
			t.Errorf("%s %s is not a Secret's file in the pod; mounted: %v", setting, p, keysOf(files))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := r.secrets[ref.Name][ref.Key]; !ok {
				t.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
		}
	}
	return r
}

type mountedFile struct{ source, content string }

// mountedFiles lists the files the container sees from ConfigMaps and
// Secrets: path -> where it comes from and its content.
func mountedFiles(t *testing.T, r rendered) map[string]mountedFile {
	t.Helper()
	out := map[string]mountedFile{}
	for _, m := range r.container.VolumeMounts {
		for _, v := range r.deploy.Spec.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			var kind, name string
			var data map[string]string
			var items []keyToPath
			switch {
			case v.Secret != nil:
				kind, name, data, items = "Secret", v.Secret.SecretName, r.secrets[v.Secret.SecretName], v.Secret.Items
			case v.ConfigMap != nil:
				kind, name, data, items = "ConfigMap", v.ConfigMap.Name, r.configMaps[v.ConfigMap.Name], v.ConfigMap.Items
			default:
				continue
			}
			if data == nil {
				t.Errorf("volume %s: %s %s is not in the output", v.Name, kind, name)
				continue
			}
			if len(items) == 0 {
				for k := range data {
					items = append(items, keyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				content, ok := data[it.Key]
				if !ok {
					t.Errorf("volume %s: %s %s has no key %s", v.Name, kind, name, it.Key)
				}
				if m.SubPath != "" {
					if m.SubPath == it.Path {
						out[m.MountPath] = mountedFile{kind + " " + name + "/" + it.Key, content}
					}
					continue
				}
				out[path.Join(m.MountPath, it.Path)] = mountedFile{kind + " " + name + "/" + it.Key, content}
			}
		}
	}
	return out
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func intOrUnset(n *int) string {
	if n == nil {
		return "unset (30)"
	}
	return strconv.Itoa(*n)
}

// orDefault is n, or Kubernetes' default def when the field is unset.
func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func isTrue(b *bool) bool { return b != nil && *b }

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestKubernetesBase(t *testing.T) {
	r := checkRendered(t, render(t, "k8s/base"))

	// The base's policy is the shipped one (kustomize cannot read
	// deploy/policy.yaml from there, so it keeps a copy).
	shipped := readFile(t, "policy.yaml")
	if copyInBase := readFile(t, "k8s/base/policy.yaml"); !bytes.Equal(copyInBase, shipped) {
		t.Error("deploy/k8s/base/policy.yaml differs from deploy/policy.yaml: cp deploy/policy.yaml deploy/k8s/base/policy.yaml")
	}
	if got := mountedFiles(t, r)[r.cfg.PolicyPath].content; got != string(shipped) {
		t.Error("the base's policy ConfigMap is not deploy/policy.yaml")
	}

	// The base's keys are placeholders that consentd refuses, so applying
	// the base by mistake fails at start instead of running on published keys.
	files := mountedFiles(t, r)
	if _, err := keys.Parse([]byte(files[r.cfg.KeysFile].content)); err == nil {
		t.Error("the base's keys file is accepted by consentd: its placeholders must not be usable keys")
	}
	if _, err := auth.ParseAPIKeys([]byte(files[r.cfg.APIKeysFile].content)); err == nil {
		t.Error("the base's API keys file is accepted by consentd: its placeholder must not be a usable hash")
	}
	if r.cfg.RedisMode != "standalone" {
		t.Errorf("base: Redis mode %s; the base runs against one Redis", r.cfg.RedisMode)
	}
	// The base publishes nothing: an Ingress needs a host and a certificate
	// of the operator's own (the production overlay has the example).
	if len(r.ingresses) != 0 {
		t.Errorf("base: %d Ingress(es); the example belongs in an overlay", len(r.ingresses))
	}
}

func TestKubernetesProductionOverlay(t *testing.T) {
	// The overlay reads its keys from secrets/, which is never in git: render
	// a copy of deploy/k8s with freshly made ones.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("k8s")); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "overlays/production/secrets")
	apiKey := randomText(t)
	want := map[string]string{
		"keys.yaml": fmt.Sprintf("hmac_keys:\n  - id: h1\n    secret: %s\nencryption_keys:\n  - id: e1\n    secret: %s\ntoken_keys:\n  - id: t1\n    secret: %s\n",
			randomKey(t), randomKey(t), randomKey(t)),
		"api-keys.yaml":  fmt.Sprintf("keys:\n  - name: checkout\n    hash: %s\n    scopes: [check, read]\n", sha256Hex(apiKey)),
		"redis-password": randomText(t),
	}
	for name, content := range want {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := checkRendered(t, render(t, filepath.Join(dir, "overlays/production")))

	// The real keys replaced the placeholders, and consentd accepts them.
	files := mountedFiles(t, r)
	if got := files[r.cfg.KeysFile].content; got != want["keys.yaml"] {
		t.Errorf("--keys-file in the pod is not secrets/keys.yaml:\n%s", got)
	} else if _, err := keys.Parse([]byte(got)); err != nil {
		t.Errorf("keys file: %v", err)
	}
	if got := files[r.cfg.APIKeysFile].content; got != want["api-keys.yaml"] {
		t.Errorf("--api-keys-file in the pod is not secrets/api-keys.yaml:\n%s", got)
	}
	for _, f := range files {
		if strings.Contains(f.content, want["redis-password"]) {
			t.Errorf("the Redis password is mounted as a file (%s); it belongs in the environment only", f.source)
		}
	}

	// What the overlay is for: Redis Cluster, a pinned image, more pods.
	if r.cfg.RedisMode != "cluster" || len(r.cfg.RedisAddrs) == 0 {
		t.Errorf("production: Redis mode %q with %v; want cluster with seed nodes", r.cfg.RedisMode, r.cfg.RedisAddrs)
	}
	for _, e := range r.container.Env {
		if e.Name == "CONSENTD_REDIS_URL" {
			t.Error("production: CONSENTD_REDIS_URL is left over from the base; cluster mode reads --redis-addrs")
		}
		if e.Name == "CONSENTD_REDIS_PASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("production: CONSENTD_REDIS_PASSWORD must come from a Secret")
		}
	}
	if name, tag, ok := strings.Cut(r.container.Image, ":"); !ok || name == "consentd" || tag == "" || tag == "latest" {
		t.Errorf("production: image %s; want a registry and a pinned tag", r.container.Image)
	}
	if r.hpa.Spec.MinReplicas < 3 || r.hpa.Spec.MaxReplicas < r.hpa.Spec.MinReplicas {
		t.Errorf("production: HPA %d..%d replicas; want at least 3", r.hpa.Spec.MinReplicas, r.hpa.Spec.MaxReplicas)
	}
	// The example Ingress publishes the public Service (checkRendered checks
	// every backend), and the public port admits only the ingress
	// controller's namespace.
	if len(r.ingresses) != 1 {
		t.Errorf("production: %d Ingresses; want the example one for %s", len(r.ingresses), publicService)
	}
	if a := r.policy[r.listeners.public]; a.anyone || len(a.peers) == 0 {
		t.Errorf("production: the public port %d is open to anyone; want the ingress controller's namespace only", r.listeners.public)
	} else {
		for _, pr := range a.peers {
			if pr.NamespaceSelector == nil || pr.NamespaceSelector.MatchLabels[namespaceNameLabel] == "" {
				t.Errorf("production: the public port admits %v; want the ingress controller's namespace by name", pr)
			}
		}
	}
	// Secret files in the overlay's folder never go into git.
	if ignore := string(readFile(t, "k8s/overlays/production/secrets/.gitignore")); !strings.Contains(ignore, "\n*\n") {
		t.Error("deploy/k8s/overlays/production/secrets/.gitignore must ignore everything in it")
	}
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, keys.MinSecretBytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func randomText(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// mebibytes reads a Kubernetes "512Mi" or "1Gi", or a GOMEMLIMIT "400MiB";
// 0 for anything else.
func mebibytes(q string) int {
	q = strings.TrimSuffix(q, "B")
	for suffix, factor := range map[string]int{"Mi": 1, "Gi": 1024} {
		if n, err := strconv.Atoi(strings.TrimSuffix(q, suffix)); err == nil && strings.HasSuffix(q, suffix) {
			return n * factor
		}
	}
	return 0
}

func envValue(c container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
