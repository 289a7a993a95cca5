package deploy_test

// Checks of the listeners by audience (issue 18) in the deployment files:
// browsers reach the public port only, services the internal REST and gRPC
// ports, operators' tooling and the kubelet the admin port. The ports come
// from consentd's own settings, so a manifest that points a probe, a Service,
// an Ingress or a NetworkPolicy rule at the wrong listener fails here.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/consentd/consentd/server/config"
)

const (
	internalService = "consentd"        // the internal API's Service (the name it always had)
	publicService   = "consentd-public" // the browsers' Service, the only one an Ingress may back
	// clientLabel is the pod label the NetworkPolicy asks of the internal
	// API's callers.
	clientLabel = "consentd.io/client"
	// monitoringNamespace is the only namespace admitted to the admin port.
	monitoringNamespace = "monitoring"
	namespaceNameLabel  = "kubernetes.io/metadata.name"
)

// listeners are the ports consentd listens on, one per audience; 0 when
// that listener is off.
type listeners struct{ public, http, grpc, admin int }

// byName is the container port each listener must have, by port name.
func (l listeners) byName() map[string]int {
	return map[string]int{"public": l.public, "http": l.http, "grpc": l.grpc, "admin": l.admin}
}

// internal reports whether port is the internal REST or gRPC port.
func (l listeners) internal(port int) bool { return port != 0 && (port == l.http || port == l.grpc) }

// listenerPorts reads the four listeners' ports from consentd's settings as
// the process would get them (args over env over defaults). The admin
// listener, and the public one when needPublic, must be on: without them
// the health and metrics endpoints and the public routes fall back to the
// internal HTTP port, which is what these deployments exist to avoid.
func listenerPorts(t *testing.T, where string, args []string, env map[string]string, cfg config.Config, needPublic bool) listeners {
	t.Helper()
	l := listeners{
		http: port(t, where, "--http-addr", cfg.HTTPAddr),
		grpc: port(t, where, "--grpc-addr", cfg.GRPCAddr),
	}
	for _, s := range []struct {
		flag string
		dst  *int
	}{{"public-addr", &l.public}, {"admin-addr", &l.admin}} {
		addr, known := listenAddr(args, env, s.flag)
		switch {
		case !known:
			t.Fatalf("%s: consentd has no --%s (server/config): this consentd predates the listeners by audience", where, s.flag)
		case addr == "" && s.flag == "public-addr" && !needPublic:
		case addr == "":
			t.Errorf("%s: --%s is not set: its endpoints would fall back to the internal HTTP listener", where, s.flag)
		default:
			*s.dst = port(t, where, "--"+s.flag, addr)
		}
	}
	seen := map[int]string{}
	for name, p := range l.byName() {
		if other, dup := seen[p]; dup && p != 0 {
			t.Errorf("%s: %s and %s both on port %d", where, name, other, p)
		}
		seen[p] = name
	}
	return l
}

// listenAddr is the value of consentd's flag name as the process would see
// it: the flag in args, else its CONSENTD_* variable in env, else the
// default. known is false when consentd has no such flag.
func listenAddr(args []string, env map[string]string, name string) (addr string, known bool) {
	f, ok := realSettings().byFlag[name]
	if !ok {
		return "", false
	}
	addr = f.Default
	if v := env[f.Env]; v != "" {
		addr = v
	}
	for i, arg := range args {
		if !strings.HasPrefix(arg, "-") {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		switch {
		case n == name && hasValue:
			addr = v
		case n == name && i+1 < len(args):
			addr = args[i+1]
		}
	}
	return addr, true
}

// resolvePort is a port given by name or number, as Kubernetes resolves it
// against the container's ports; 0 if it names none.
func resolvePort(ports map[string]int, p any) int {
	switch v := p.(type) {
	case int:
		return v
	case string:
		return ports[v]
	}
	return 0
}

// checkServices: the internal Service carries the internal REST and gRPC
// ports and stays inside the cluster, the public one the public port only,
// and no Service carries the admin port.
func checkServices(t *testing.T, objects map[string][]*yaml.Node, labels map[string]string, ports map[string]int, ls listeners) map[string]service {
	t.Helper()
	services := map[string]service{}
	for _, n := range objects["Service"] {
		var s service
		if err := n.Decode(&s); err != nil {
			t.Fatal(err)
		}
		services[s.Metadata.Name] = s
	}
	if got := slices.Sorted(maps.Keys(services)); !slices.Equal(got, []string{internalService, publicService}) {
		t.Errorf("Services %v; want %s (internal) and %s (public)", got, internalService, publicService)
	}
	for name, s := range services {
		if !selects(s.Spec.Selector, labels) {
			t.Errorf("Service %s: selector %v does not select the pods (labels %v)", name, s.Spec.Selector, labels)
		}
		targets := map[string]int{} // Service port name -> container port
		for _, p := range s.Spec.Ports {
			target := resolvePort(ports, p.TargetPort)
			if target == 0 {
				t.Errorf("Service %s port %s: targetPort %v is none of the container's ports %v", name, p.Name, p.TargetPort, ports)
			}
			if target == ls.admin {
				t.Errorf("Service %s port %s: targets the admin port %d (metrics, pprof); no Service may carry it", name, p.Name, target)
			}
			targets[p.Name] = target
		}
		switch name {
		case internalService:
			// The names stay http and grpc at 8080 and 9090: callers address them.
			want := map[string]int{"http": ls.http, "grpc": ls.grpc}
			got := map[string]int{}
			for _, p := range s.Spec.Ports {
				got[p.Name] = p.Port
			}
			if !maps.Equal(targets, want) || got["http"] != 8080 || got["grpc"] != 9090 {
				t.Errorf("Service %s: ports %v -> %v; want http 8080 -> %d and grpc 9090 -> %d, nothing else", name, got, targets, ls.http, ls.grpc)
			}
			if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
				t.Errorf("Service %s: type %s; the internal API stays inside the cluster (ClusterIP)", name, s.Spec.Type)
			}
		case publicService:
			if len(targets) != 1 || slices.Collect(maps.Values(targets))[0] != ls.public {
				t.Errorf("Service %s: ports %v; want one port, to the public listener %d", name, targets, ls.public)
			}
		}
	}
	return services
}

type ingressBackend struct {
	Service *struct {
		Name string `yaml:"name"`
		Port struct {
			Name   string `yaml:"name"`
			Number int    `yaml:"number"`
		} `yaml:"port"`
	} `yaml:"service"`
	Resource any `yaml:"resource"`
}

type ingress struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		DefaultBackend *ingressBackend `yaml:"defaultBackend"`
		TLS            []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
		Rules []struct {
			Host string `yaml:"host"`
			HTTP *struct {
				Paths []struct {
					Path    string         `yaml:"path"`
					Backend ingressBackend `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

// checkIngresses: every backend of every Ingress is the public Service's
// port (never the internal API, never admin), over TLS.
func checkIngresses(t *testing.T, objects map[string][]*yaml.Node, services map[string]service) []ingress {
	t.Helper()
	var out []ingress
	publicPorts := services[publicService].Spec.Ports
	for _, n := range objects["Ingress"] {
		var ing ingress
		if err := n.Decode(&ing); err != nil {
			t.Fatal(err)
		}
		where := "Ingress " + ing.Metadata.Name
		var backends []ingressBackend
		if ing.Spec.DefaultBackend != nil {
			backends = append(backends, *ing.Spec.DefaultBackend)
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				backends = append(backends, p.Backend)
			}
		}
		if len(backends) == 0 {
			t.Errorf("%s: no backends", where)
		}
		for _, b := range backends {
			if b.Service == nil {
				t.Errorf("%s: a backend that is not a Service (%v); only %s may be published", where, b.Resource, publicService)
				continue
			}
			ok := false
			for _, p := range publicPorts {
				ok = ok || b.Service.Name == publicService &&
					((b.Service.Port.Name != "" && b.Service.Port.Name == p.Name) || (b.Service.Port.Number != 0 && b.Service.Port.Number == p.Port))
			}
			if !ok {
				t.Errorf("%s: backend %s port %+v; an Ingress may publish only the public Service's port (%s)", where, b.Service.Name, b.Service.Port, publicService)
			}
		}
		if len(ing.Spec.TLS) == 0 || ing.Spec.TLS[0].SecretName == "" {
			t.Errorf("%s: no TLS; browsers send subject tokens to it", where)
		}
		out = append(out, ing)
	}
	return out
}

type peer struct {
	PodSelector       *selector `yaml:"podSelector"`
	NamespaceSelector *selector `yaml:"namespaceSelector"`
	IPBlock           any       `yaml:"ipBlock"`
}

func (p peer) String() string {
	var parts []string
	if p.NamespaceSelector != nil {
		parts = append(parts, fmt.Sprintf("namespaces %v", p.NamespaceSelector.MatchLabels))
	}
	if p.PodSelector != nil {
		parts = append(parts, fmt.Sprintf("pods %v", p.PodSelector.MatchLabels))
	}
	if p.IPBlock != nil {
		parts = append(parts, fmt.Sprintf("ipBlock %v", p.IPBlock))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

type networkPolicy struct {
	Spec struct {
		PodSelector selector `yaml:"podSelector"`
		PolicyTypes []string `yaml:"policyTypes"`
		Ingress     []struct {
			Ports []struct {
				Port any `yaml:"port"`
			} `yaml:"ports"`
			From []peer `yaml:"from"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

// admitted is, per container port, who the NetworkPolicy lets connect:
// anyone, or the peers listed.
type admitted map[int]struct {
	anyone bool
	peers  []peer
}

// checkNetworkPolicy: the internal ports admit only pods labelled
// consentd.io/client: "true", the admin port only the monitoring namespace,
// and the public port is admitted at all.
func checkNetworkPolicy(t *testing.T, objects map[string][]*yaml.Node, labels map[string]string, ports map[string]int, ls listeners) admitted {
	t.Helper()
	var np networkPolicy
	one(t, objects, "NetworkPolicy", &np)
	if !selects(np.Spec.PodSelector.MatchLabels, labels) {
		t.Errorf("NetworkPolicy: podSelector %v does not select the pods (labels %v)", np.Spec.PodSelector.MatchLabels, labels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Errorf("NetworkPolicy: policyTypes %v; without Ingress it admits everyone", np.Spec.PolicyTypes)
	}
	adm := admitted{}
	for i, rule := range np.Spec.Ingress {
		var rulePorts []int
		for _, p := range rule.Ports {
			n := resolvePort(ports, p.Port)
			if !slices.Contains(slices.Collect(maps.Values(ports)), n) {
				t.Errorf("NetworkPolicy: ingress[%d]: port %v is none of the container's ports %v", i, p.Port, ports)
			}
			rulePorts = append(rulePorts, n)
		}
		if len(rule.Ports) == 0 { // a rule without ports admits to every port
			rulePorts = slices.Collect(maps.Values(ports))
		}
		for _, p := range rulePorts {
			a := adm[p]
			a.anyone = a.anyone || len(rule.From) == 0
			a.peers = append(a.peers, rule.From...)
			adm[p] = a
		}
	}
	for name, p := range ls.byName() {
		a, ok := adm[p]
		if !ok || (!a.anyone && len(a.peers) == 0) {
			t.Errorf("NetworkPolicy: nothing admits the %s port %d", name, p)
			continue
		}
		switch {
		case ls.internal(p):
			if a.anyone {
				t.Errorf("NetworkPolicy: the internal %s port %d is open to anyone; only pods labelled %s: \"true\"", name, p, clientLabel)
			}
			for _, pr := range a.peers {
				if pr.IPBlock != nil || pr.PodSelector == nil || pr.PodSelector.MatchLabels[clientLabel] != "true" {
					t.Errorf("NetworkPolicy: the internal %s port %d admits %v; only pods labelled %s: \"true\"", name, p, pr, clientLabel)
				}
			}
		case p == ls.admin:
			if a.anyone {
				t.Errorf("NetworkPolicy: the admin port %d is open to anyone; only the %s namespace", p, monitoringNamespace)
			}
			for _, pr := range a.peers {
				if pr.IPBlock != nil || pr.NamespaceSelector == nil || pr.NamespaceSelector.MatchLabels[namespaceNameLabel] != monitoringNamespace {
					t.Errorf("NetworkPolicy: the admin port %d admits %v; only the %s namespace", p, pr, monitoringNamespace)
				}
			}
		}
	}
	return adm
}
