// Tests of the deployment files against consentd itself: every setting they
// use is a real one and passes consentd's own validation, ports and probes
// match the listeners, and the images, secrets and policy line up. Docker
// cannot run here, so the Dockerfile and compose.yaml are checked by
// reading them; the Kubernetes files are rendered with kustomize (k8s_test.go).
package deploy_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/consentd/consentd/server/config"
)

// --- consentd's settings ------------------------------------------------------

// settings indexes config.Flags() by flag name and by environment variable.
type settings struct {
	byFlag map[string]config.Flag
	byEnv  map[string]bool
}

func realSettings() settings {
	s := settings{byFlag: map[string]config.Flag{}, byEnv: map[string]bool{}}
	for _, f := range config.Flags() {
		s.byFlag[f.Name] = f
		s.byEnv[f.Env] = true
	}
	for _, env := range config.EnvOnly {
		s.byEnv[env] = true
	}
	return s
}

// placeholderFromSecret stands for an environment value Kubernetes fills in
// from a Secret when the pod starts.
const placeholderFromSecret = "value-from-a-secret-0123456789abcdef"

// load checks that every CONSENTD_* variable in env and every flag in args is
// one of consentd's settings, then runs consentd's own config.Load on them,
// as the binary would at start. where names the file and service in errors.
// demoSite, if not "", is a local folder standing in for --demo-site's
// value (which exists only inside the image): Load checks that it has demo/.
func load(t *testing.T, where string, args []string, env map[string]string, demoSite string) config.Config {
	t.Helper()
	s := realSettings()
	for name := range env {
		if strings.HasPrefix(name, "CONSENTD_") && !s.byEnv[name] {
			t.Errorf("%s: environment variable %s is not a consentd setting (see server/config)", where, name)
		}
	}
	for _, arg := range args {
		name, isFlag := strings.CutPrefix(arg, "-")
		if !isFlag {
			continue // a flag's value
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		if _, ok := s.byFlag[name]; !ok {
			t.Errorf("%s: flag %s is not a consentd flag (see server/config)", where, arg)
		}
	}
	if demoSite != "" {
		args, env = withDemoSite(t, args, env, demoSite)
	}
	cfg, err := config.Load(args, func(name string) string { return env[name] }, new(strings.Builder))
	if err != nil {
		t.Fatalf("%s: consentd would refuse these settings: %v", where, err)
	}
	return cfg
}

// withDemoSite points --demo-site (flag or variable) at a local folder with
// a demo/ inside, after checking it names want, the folder the image has.
func withDemoSite(t *testing.T, args []string, env map[string]string, want string) ([]string, map[string]string) {
	t.Helper()
	local := t.TempDir()
	if err := os.Mkdir(filepath.Join(local, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	args = slices.Clone(args)
	for i, arg := range args {
		if (arg == "--demo-site" || arg == "-demo-site") && i+1 < len(args) {
			if args[i+1] != want {
				t.Errorf("--demo-site %s: the image has the SDK's demo in %s", args[i+1], want)
			}
			args[i+1] = local
		}
	}
	if v, ok := env["CONSENTD_DEMO_SITE"]; ok {
		if v != want {
			t.Errorf("CONSENTD_DEMO_SITE=%s: the image has the SDK's demo in %s", v, want)
		}
		env = cloneMap(env)
		env["CONSENTD_DEMO_SITE"] = local
	}
	return args, env
}

// port is the port of a listening address; it fails the test unless the
// address listens on every interface, as it must inside a container.
func port(t *testing.T, where, setting, addr string) int {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", where, setting, addr, err)
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("%s: %s is %s: inside a container it must listen on 0.0.0.0, or nothing outside reaches it", where, setting, addr)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// --- Dockerfile ---------------------------------------------------------------

type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string // the rest, continuation lines joined
}

type stage struct {
	name, base string // base: an image, or an earlier stage's name
	steps      []instruction
}

// parseDockerfile reads the stages of a Dockerfile: enough of the format for
// this one (comments, line continuations, FROM [--platform=..] IMAGE [AS name]).
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	var stages []stage
	var logical strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(readFile(t, path))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && logical.Len() == 0) {
			continue
		}
		if rest, more := strings.CutSuffix(line, "\\"); more {
			logical.WriteString(rest + " ")
			continue
		}
		logical.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(logical.String()), " ")
		logical.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			st := stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", path, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].steps = append(stages[len(stages)-1].steps, in)
	}
	return stages
}

// image is what a stage of the Dockerfile gives at run time, with what it
// inherits from the stages it is built on.
type image struct {
	root                    string            // the first base that is not a stage
	env                     map[string]string // ENV
	user                    string
	expose                  []int
	healthcheck, entrypoint []string
	copied                  map[string]string // file in the image -> "stage:source" it was copied from
}

func resolve(t *testing.T, stages []stage, name string) image {
	t.Helper()
	var chain []stage
	for name != "" {
		i := slices.IndexFunc(stages, func(s stage) bool { return s.name == name })
		if i < 0 {
			break
		}
		chain = append([]stage{stages[i]}, chain...)
		name = stages[i].base
	}
	if len(chain) == 0 {
		t.Fatalf("Dockerfile: no stage %q", name)
	}
	img := image{root: chain[0].base, env: map[string]string{}, copied: map[string]string{}}
	for _, st := range chain {
		for _, in := range st.steps {
			switch in.cmd {
			case "ENV":
				for _, kv := range strings.Fields(in.args) {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						t.Fatalf("Dockerfile: ENV %s: use KEY=value", in.args)
					}
					img.env[k] = v
				}
			case "USER":
				img.user = in.args
			case "EXPOSE":
				for _, p := range strings.Fields(in.args) {
					n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
					if err != nil {
						t.Fatalf("Dockerfile: EXPOSE %s", in.args)
					}
					img.expose = append(img.expose, n)
				}
			case "HEALTHCHECK":
				img.healthcheck = nil // HEALTHCHECK NONE
				if _, cmd, ok := strings.Cut(in.args, "CMD "); ok {
					img.healthcheck = execForm(t, cmd)
				}
			case "ENTRYPOINT":
				img.entrypoint = execForm(t, in.args)
			case "COPY":
				from, srcs, dst := copyArgs(in.args)
				for _, src := range srcs {
					target := dst
					if strings.HasSuffix(dst, "/") && !strings.HasSuffix(src, "/") {
						target = dst + filepath.Base(src)
					}
					img.copied[target] = from + ":" + src
				}
			}
		}
	}
	return img
}

// copyArgs splits COPY [--from=stage] [--flags] SRC... DST.
func copyArgs(args string) (from string, srcs []string, dst string) {
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		if v, ok := strings.CutPrefix(f[0], "--from="); ok {
			from = v
		}
		f = f[1:]
	}
	return from, f[:len(f)-1], f[len(f)-1]
}

func execForm(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := yaml.Unmarshal([]byte(s), &out); err != nil || len(out) == 0 {
		t.Fatalf("Dockerfile: %q: want the exec form [\"binary\", \"arg\"] (no shell in the image)", s)
	}
	return out
}

// consentdBuild matches a command that builds the server's main package.
var consentdBuild = regexp.MustCompile(`go build [^&;]*\./server/cmd/consentd(\s|$)`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a small runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	if final.name == "" {
		t.Fatal("Dockerfile: name the last stage (FROM ... AS name), the default target")
	}
	img := resolve(t, stages, final.name)
	const where = "Dockerfile (default target)"

	// Small and non-root.
	if !strings.HasPrefix(img.root, "gcr.io/distroless/static") && img.root != "scratch" {
		t.Errorf("%s: runtime base %s; want distroless/static or scratch", where, img.root)
	}
	uid, _, _ := strings.Cut(img.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("%s: USER %q; want a numeric non-root uid (Kubernetes' runAsNonRoot can verify only numbers)", where, img.user)
	}

	// Built from ./server/cmd/consentd, static, and that binary is the entrypoint.
	var built string // stage:output of the consentd build
	for _, st := range stages {
		for _, in := range st.steps {
			if in.cmd == "RUN" && consentdBuild.MatchString(in.args) {
				if !regexp.MustCompile(`CGO_ENABLED=0 [^&;]*go build [^&;]*\./server/cmd/consentd(\s|$)`).MatchString(in.args) {
					t.Errorf("Dockerfile stage %s: the consentd build needs CGO_ENABLED=0 (a static binary for distroless/static): %s", st.name, in.args)
				}
				if m := regexp.MustCompile(`-o (\S+) \./server/cmd/consentd(\s|$)`).FindStringSubmatch(in.args); m != nil {
					built = st.name + ":" + m[1]
				}
			}
		}
	}
	if built == "" {
		t.Fatalf("Dockerfile: no RUN ... go build -o BINARY ./server/cmd/consentd")
	}
	if len(img.entrypoint) == 0 || img.copied[img.entrypoint[0]] != built {
		t.Errorf("%s: ENTRYPOINT %v is not the binary built from ./server/cmd/consentd (%s); copied: %v", where, img.entrypoint, built, img.copied)
	}

	// Listens on every interface, on the ports it exposes.
	env := cloneMap(img.env)
	for name := range env {
		if strings.HasPrefix(name, "CONSENTD_") && !realSettings().byEnv[name] {
			t.Errorf("%s: ENV %s is not a consentd setting", where, name)
		}
	}
	s := realSettings()
	addr := func(flag string) string {
		if v, ok := env[s.byFlag[flag].Env]; ok {
			return v
		}
		return s.byFlag[flag].Default
	}
	httpPort := port(t, where, "--http-addr", addr("http-addr"))
	grpcPort := port(t, where, "--grpc-addr", addr("grpc-addr"))
	if got, want := slices.Sorted(slices.Values(img.expose)), slices.Sorted(slices.Values([]int{httpPort, grpcPort})); !slices.Equal(got, want) {
		t.Errorf("%s: EXPOSE %v; consentd listens on %v", where, got, want)
	}

	// The health check runs a binary the image has: without a URL it asks
	// the port of CONSENTD_ADMIN_ADDR, else CONSENTD_HTTP_ADDR (healthprobe's
	// healthURL, tested there); with one, consentd's HTTP port.
	switch {
	case len(img.healthcheck) < 1 || len(img.healthcheck) > 2 || img.copied[img.healthcheck[0]] == "":
		t.Errorf("%s: HEALTHCHECK %v: want [probe binary copied into the image] or [that binary, URL]", where, img.healthcheck)
	case len(img.healthcheck) == 1:
		if _, ok := env["CONSENTD_HTTP_ADDR"]; !ok {
			t.Errorf("%s: HEALTHCHECK without a URL needs ENV CONSENTD_HTTP_ADDR to find consentd", where)
		}
	case img.healthcheck[1] != fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort):
		t.Errorf("%s: HEALTHCHECK probes %s; want http://127.0.0.1:%d/healthz", where, img.healthcheck[1], httpPort)
	}

	// What COPY takes from the build context exists in the repository, and
	// the Go image is at least the go.mod version.
	for _, st := range stages {
		for _, in := range st.steps {
			if from, srcs, _ := copyArgs(in.args); in.cmd == "COPY" && from == "" {
				for _, src := range srcs {
					if _, err := os.Stat(filepath.Join("..", src)); err != nil {
						t.Errorf("Dockerfile stage %s: COPY %s: not in the repository", st.name, src)
					}
				}
			}
		}
		if v, ok := strings.CutPrefix(st.base, "golang:"); ok {
			if goMod := goVersion(t); !versionAtLeast(v, goMod) {
				t.Errorf("Dockerfile stage %s: %s is older than go.mod's go %s", st.name, st.base, goMod)
			}
		}
	}
}

// demoSiteInImage is where the demo target keeps the SDK's demo/ and dist/.
func demoSiteInImage(t *testing.T) string {
	t.Helper()
	img := resolve(t, parseDockerfile(t, "Dockerfile"), "demo")
	for dst := range img.copied {
		if site, ok := strings.CutSuffix(strings.TrimSuffix(dst, "/"), "/demo"); ok {
			if _, hasDist := img.copied[site+"/dist/"]; hasDist {
				return site
			}
		}
	}
	t.Fatalf("Dockerfile: the demo target copies no SDK demo/ and dist/ into one folder: %v", img.copied)
	return ""
}

func goVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, "../go.mod"))
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	return string(m[1])
}

// versionAtLeast compares the major.minor at the start of tag ("1.26",
// "1.26-bookworm", "1.26.3") with want ("1.26").
func versionAtLeast(tag, want string) bool {
	parse := func(s string) (int, int) {
		m := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(s)
		if m == nil {
			return 0, 0
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		return a, b
	}
	ta, tb := parse(tag)
	wa, wb := parse(want)
	return ta > wa || (ta == wa && tb >= wb)
}

// --- compose.yaml ---------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	ReadOnly        bool   `yaml:"read_only"`
}

func TestCompose(t *testing.T) {
	var f composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	stages := parseDockerfile(t, "Dockerfile")
	redis, ok := f.Services["redis"]
	if !ok {
		t.Fatal("compose.yaml: no redis service")
	}
	// Redis 7.0+ (the change feed needs it), every write fsynced.
	if !regexp.MustCompile(`^redis:7\.\d+`).MatchString(redis.Image) {
		t.Errorf("compose.yaml: redis image %s; want redis:7.x (7.0+ for the change feed)", redis.Image)
	}
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--appendfsync always") {
		t.Errorf("compose.yaml: redis runs %q; want --appendonly yes --appendfsync always", cmd)
	}
	if redis.Healthcheck == nil {
		t.Error("compose.yaml: redis has no healthcheck for consentd to wait on")
	}

	hostPorts := map[string]string{}
	instances := map[string]listeners{}
	for _, name := range []string{"consentd-a", "consentd-b", "demo"} {
		svc, ok := f.Services[name]
		if !ok {
			t.Errorf("compose.yaml: no %s service", name)
			continue
		}
		where := "compose.yaml " + name
		if svc.Build == nil || filepath.Clean(filepath.Join(svc.Build.Context, svc.Build.Dockerfile)) != filepath.Clean("../deploy/Dockerfile") {
			t.Errorf("%s: want build from the repository root with deploy/Dockerfile", where)
			continue
		}
		target := svc.Build.Target
		if target == "" {
			target = stages[len(stages)-1].name
		}
		img := resolve(t, stages, target)

		// The image's environment, then the service's, then its command.
		env := cloneMap(img.env)
		for k, v := range svc.Environment {
			env[k] = v
		}
		demoSite := ""
		if slices.Contains(svc.Command, "--demo-site") {
			demoSite = demoSiteInImage(t)
		}
		cfg := load(t, where, svc.Command, env, demoSite)

		// Ports: one listener per audience, as in Kubernetes. Only the public
		// port is published (the demo, which has no public listener, its
		// one HTTP port); never the admin port. On loopback, each host port
		// once.
		ls := listenerPorts(t, where, svc.Command, env, cfg, !cfg.Demo)
		instances[name] = ls
		wantPublished := ls.public
		if wantPublished == 0 {
			wantPublished = ls.http
		}
		published := map[int]bool{}
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s: port %q: want 127.0.0.1:HOST:CONTAINER (not on every interface of the host)", where, p)
				continue
			}
			if other, dup := hostPorts[parts[1]]; dup {
				t.Errorf("%s: host port %s is also %s's", where, parts[1], other)
			}
			hostPorts[parts[1]] = name
			n, _ := strconv.Atoi(parts[2])
			if n != wantPublished {
				t.Errorf("%s: port %q publishes container port %d; want only %d (public %d, internal %d and %d, admin %d)", where, p, n, wantPublished, ls.public, ls.http, ls.grpc, ls.admin)
			}
			published[n] = true
		}
		if !published[wantPublished] {
			t.Errorf("%s: ports %v; want port %d published", where, svc.Ports, wantPublished)
		}

		// The health check runs the image's probe against the admin port.
		if svc.Healthcheck == nil || len(svc.Healthcheck.Test) != 3 || svc.Healthcheck.Test[0] != "CMD" || img.copied[svc.Healthcheck.Test[1]] == "" {
			t.Errorf("%s: healthcheck %+v: want [CMD, probe binary of the image, URL]", where, svc.Healthcheck)
		} else if !regexp.MustCompile(fmt.Sprintf(`^http://127\.0\.0\.1:%d/(readyz|healthz)$`, ls.admin)).MatchString(svc.Healthcheck.Test[2]) || ls.admin == 0 {
			t.Errorf("%s: healthcheck probes %s; want http://127.0.0.1:%d/readyz or /healthz (the admin port)", where, svc.Healthcheck.Test[2], ls.admin)
		}
		if svc.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s: want depends_on redis: condition: service_healthy", where)
		}

		// Key files come from compose secrets, mounted at /run/secrets/NAME.
		for setting, path := range map[string]string{"--keys-file": cfg.KeysFile, "--api-keys-file": cfg.APIKeysFile} {
			if path == "" {
				continue
			}
			secret, ok := strings.CutPrefix(path, "/run/secrets/")
			if !ok || !slices.Contains(svc.Secrets, secret) || f.Secrets[secret].File == "" {
				t.Errorf("%s: %s %s is not a secret the service mounts (/run/secrets/NAME, NAME under secrets:)", where, setting, path)
			}
		}
		if !cfg.Demo && cfg.APIKeysFile == "" {
			t.Errorf("%s: an API instance without an API keys file", where)
		}

		// Docker's SIGKILL must not cut the drain and the in-flight calls short.
		grace, err := time.ParseDuration(svc.StopGracePeriod)
		if err != nil || grace < cfg.DrainDelay+cfg.ShutdownTimeout {
			t.Errorf("%s: stop_grace_period %q; want at least --drain-delay + --shutdown-timeout = %s", where, svc.StopGracePeriod, cfg.DrainDelay+cfg.ShutdownTimeout)
		}
		if !svc.ReadOnly {
			t.Errorf("%s: want read_only: true (consentd writes nothing to disk)", where)
		}
	}
	// The demo accepts unauthenticated writes: it must not share the API
	// instances' data.
	if a, d := f.Services["consentd-a"].Environment["CONSENTD_REDIS_URL"], f.Services["demo"].Environment["CONSENTD_REDIS_URL"]; a == d {
		t.Errorf("compose.yaml: demo and consentd-a share Redis database %s", a)
	}
	// The override that publishes the internal API adds only the API
	// instances' internal ports, on loopback, on host ports of their own.
	var internal composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.internal.yaml"), &internal); err != nil {
		t.Fatalf("compose.internal.yaml: %v", err)
	}
	for name, svc := range internal.Services {
		where := "compose.internal.yaml " + name
		ls, ok := instances[name]
		if !ok || ls.public == 0 {
			t.Errorf("%s: not an API instance of compose.yaml", where)
			continue
		}
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s: port %q: want 127.0.0.1:HOST:CONTAINER", where, p)
				continue
			}
			if other, dup := hostPorts[parts[1]]; dup {
				t.Errorf("%s: host port %s is also %s's", where, parts[1], other)
			}
			hostPorts[parts[1]] = name
			if n, _ := strconv.Atoi(parts[2]); !ls.internal(n) {
				t.Errorf("%s: port %q: this override publishes the internal ports only (%d, %d)", where, p, ls.http, ls.grpc)
			}
		}
	}
	// Secret files stay out of git.
	for name, s := range f.Secrets {
		if !strings.HasPrefix(filepath.Clean(s.File), "secrets/") {
			t.Errorf("compose.yaml: secret %s from %s; want it under deploy/secrets/ (git-ignored)", name, s.File)
		}
	}
	if ignore := string(readFile(t, "secrets/.gitignore")); !strings.Contains(ignore, "\n*\n") {
		t.Error("deploy/secrets/.gitignore must ignore everything in it")
	}
}
