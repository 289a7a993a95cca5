package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// TestREADMEExamples runs the README's shell examples as printed against
// consentd and Redis started as `make run` starts them, so the front page's
// examples keep working.
//
// Which blocks: every fenced block whose info string is "sh", in the order
// they appear, each in a fresh bash (no variables carried from one block to
// the next, none from the test's environment), all in one scratch directory
// and against one consentd, so a block sees what the blocks before it did
// (the walk-through's visitor-42 is the privacy-rights examples' subject; a
// block run alone with -run may fail for want of what came before). A block
// is left out only when the line just before its fence is
//
//	<!-- not run: the reason -->
//
// and the test logs each such block with its reason.
//
// It runs the blocks twice, in parallel, each against a consentd and Redis
// of its own: as make run (no keys anywhere), and as a real deployment's
// operator would (RIGHTS_KEY, WRITE_KEY, WATCH_KEY and KEY set to API keys
// with the scope the README says each call needs, consentd knowing them), so
// the examples are right both with and without keys.
//
// What runs: consentd in this process with deploy/local/run.sh's own
// command line (--demo --demo-site sdk-js, a keys file, ...), except that it
// listens on free ports and uses a redis-server of its own; the examples'
// localhost:8080 / 127.0.0.1:8080 and :9090 are rewritten to those ports.
// curl is a wrapper that adds --fail-with-body, so an example that gets an
// HTTP error (a 401 for an empty "Authorization: Bearer ") fails even though
// plain `curl -s` would exit 0; nothing else about the commands changes.
// grpcurl runs from PATH; when it is not installed, a block that uses it is
// skipped and says so (go install
// github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 to run it).
//
// What is checked: every command exits 0, and where the README shows the
// output in a comment right after the command ("#" and at least three
// spaces, continued by more such lines), the output has that shape: JSON is
// compared as JSON, where "…" is a wildcard — a value (`…`), the rest of an
// object's members (`{"a":1,…}`) or array (`[…]`, `[{…},…]`: the elements
// shown appear in that order among others), or any characters inside a
// string (`"v_…"`). An object shown without "…" has exactly those members.
// Output that is not JSON is compared line by line from its start, "…"
// matching any characters.
func TestREADMEExamples(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeShellBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```sh blocks")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run the README's examples")
	}
	realCurl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed to run the README's examples")
	}

	_, haveGRPCurl := exec.LookPath("grpcurl")

	// As a reader who just typed make run: no keys in the environment.
	t.Run("make run", func(t *testing.T) {
		t.Parallel()
		runREADME(t, root, realCurl, blocks, haveGRPCurl == nil, nil, nil)
	})
	// As a real deployment's operator: the keys the examples name set, each
	// with the scope the README says the call needs, and consentd knowing
	// them (still in demo mode, so the examples without keys run too).
	t.Run("with keys", func(t *testing.T) {
		t.Parallel()
		runREADME(t, root, realCurl, blocks, haveGRPCurl == nil,
			[]string{"--api-keys-file", writeAPIKeysFile(t)},
			[]string{"RIGHTS_KEY=" + apiKeys["rights"], "WRITE_KEY=" + apiKeys["write"], "WATCH_KEY=" + apiKeys["watch"], "KEY=" + apiKeys["token"]})
	})
}

func writeAPIKeysFile(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "api-keys.yaml")
	if err := os.WriteFile(name, []byte(testAPIKeysFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// runREADME runs the blocks against a consentd of their own, started with
// run.sh's arguments and extraArgs, with extraEnv in the blocks' environment.
func runREADME(t *testing.T, root, realCurl string, blocks []readmeBlock, haveGRPCurl bool, extraArgs, extraEnv []string) {
	redis := redistest.Start(t)
	logs := &syncBuffer{}
	a, err := New(makeRunConfig(t, root, redis.Addr(), extraArgs...), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, a)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consentd's log:\n%s", logs.String())
		}
	})

	work := t.TempDir()
	bin := filepath.Join(work, ".bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	shim := fmt.Sprintf("#!/bin/sh\nexec %s --fail-with-body \"$@\"\n", strconv.Quote(realCurl))
	if err := os.WriteFile(filepath.Join(bin, "curl"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + work,
		"TMPDIR=" + os.TempDir(),
		"LC_ALL=C.UTF-8",
	}, extraEnv...)
	ports := strings.NewReplacer(
		"localhost:8080", a.HTTPAddr(), "127.0.0.1:8080", a.HTTPAddr(),
		"localhost:9090", a.GRPCAddr(), "127.0.0.1:9090", a.GRPCAddr(),
	)
	for _, b := range blocks {
		t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			if b.notRun != "" {
				t.Skipf("marked not run: %s", b.notRun)
			}
			if strings.Contains(b.text(), "grpcurl") && !haveGRPCurl {
				t.Skip("NOT RUN: grpcurl is not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 to run this block)")
			}
			runBlock(t, b, work, env, ports)
		})
	}
}

// makeRunConfig is consentd's config from the command line deploy/local/run.sh
// starts it with, on free ports and the given Redis.
func makeRunConfig(t *testing.T, root, redisAddr string, extraArgs ...string) config.Config {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(root, "deploy/local/run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\./consentd ((?:.*\\\n)*.*?)\s*&\s*$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("deploy/local/run.sh: no ./consentd command line found")
	}
	runDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(runDir, "keys.yaml"), []byte(testKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	// run.sh makes an API keys file with the console's demo key.
	if err := os.WriteFile(filepath.Join(runDir, "api-keys.yaml"), []byte(testAPIKeysFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(redisAddr, ":")
	// The shell expands the arguments as run.sh does, with its variables set.
	cmd := exec.Command("bash", "-c", `printf '%s\0' `+string(m[1]))
	cmd.Dir = root
	cmd.Env = []string{"RUN_DIR=" + runDir, "REDIS_PORT=" + port, "HTTP_ADDR=127.0.0.1:8080", "GRPC_ADDR=127.0.0.1:9090"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("expanding run.sh's consentd arguments: %v", err)
	}
	args := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Contains(args, "--demo") {
		t.Fatalf("run.sh no longer starts consentd with --demo (%q): the README's examples assume demo mode", args)
	}
	// Relative paths are the repository root's, where make run runs.
	for i, arg := range args[:len(args)-1] {
		if arg == "--demo-site" && !filepath.IsAbs(args[i+1]) {
			args[i+1] = filepath.Join(root, args[i+1])
		}
	}
	args = append(args, extraArgs...)
	cfg, err := config.Load(args, func(string) string { return "" }, os.Stderr)
	if err != nil {
		t.Fatalf("run.sh's consentd arguments %q: %v", args, err)
	}
	// Free ports instead of make run's (config refuses two ":0"s).
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// readmeBlock is a ```sh block of the README.
type readmeBlock struct {
	line   int // of the opening fence
	lines  []string
	notRun string // the reason given in <!-- not run: … --> before the fence
}

func (b readmeBlock) text() string { return strings.Join(b.lines, "\n") + "\n" }

var notRunComment = regexp.MustCompile(`^<!--\s*not run:\s*(.+?)\s*-->$`)

func readmeShellBlocks(readme string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		fence, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		b := readmeBlock{line: i + 1}
		if i > 0 {
			if m := notRunComment.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				b.notRun = m[1]
			}
		}
		i++
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			b.lines = append(b.lines, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("README.md:%d: the block is not closed", b.line)
		}
		if strings.TrimSpace(fence) == "sh" {
			blocks = append(blocks, b)
		} else if b.notRun != "" {
			return nil, fmt.Errorf("README.md:%d: a not-run comment before a block that is not ```sh", b.line)
		}
	}
	return blocks, nil
}

// readmeCommand is one shell command of a block and the output shown for it.
type readmeCommand struct {
	line   int // in README.md
	text   string
	expect []string // the output comment's lines, without "#"
}

// expectedOutput is a comment line showing output: "#" and three spaces.
var expectedOutput = regexp.MustCompile(`^#   (.*)$`)

// commands splits a block into commands: a command is complete when bash
// can parse it (so a continued line or a for loop stays one command).
func (b readmeBlock) commands(t *testing.T) []readmeCommand {
	t.Helper()
	var cmds []readmeCommand
	var pending []string
	pendingLine := 0
	for i, line := range b.lines {
		n := b.line + 1 + i
		if len(pending) == 0 {
			trimmed := strings.TrimSpace(line)
			if m := expectedOutput.FindStringSubmatch(line); m != nil {
				if len(cmds) == 0 {
					t.Fatalf("README.md:%d: output shown before any command", n)
				}
				last := &cmds[len(cmds)-1]
				last.expect = append(last.expect, m[1])
				continue
			}
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				if len(cmds) > 0 && len(cmds[len(cmds)-1].expect) > 0 {
					// Output shown ends at the next line that is not output.
					cmds[len(cmds)-1].expect = append(cmds[len(cmds)-1].expect, "\x00end")
				}
				continue
			}
			pendingLine = n
		}
		pending = append(pending, line)
		text := strings.Join(pending, "\n")
		if strings.HasSuffix(line, "\\") || exec.Command("bash", "-n", "-c", text).Run() != nil {
			continue
		}
		cmds = append(cmds, readmeCommand{line: pendingLine, text: text})
		pending = nil
	}
	if len(pending) > 0 {
		t.Fatalf("README.md:%d: the command does not end (bash cannot parse it)", pendingLine)
	}
	for i := range cmds {
		if j := slices.Index(cmds[i].expect, "\x00end"); j >= 0 {
			if slices.ContainsFunc(cmds[i].expect[j:], func(s string) bool { return s != "\x00end" }) {
				t.Fatalf("README.md:%d: output shown after a comment; put it right after the command", cmds[i].line)
			}
			cmds[i].expect = cmds[i].expect[:j]
		}
	}
	return cmds
}

// runBlock runs a block's commands in one bash, each one's output and exit
// status kept apart, and checks them.
func runBlock(t *testing.T, b readmeBlock, work string, env []string, ports *strings.Replacer) {
	cmds := b.commands(t)
	out := t.TempDir()
	var script strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&script, "{\n%s\n} >%q 2>%q </dev/null; echo $? >%q\n", ports.Replace(c.text),
			filepath.Join(out, fmt.Sprint(i, ".out")), filepath.Join(out, fmt.Sprint(i, ".err")), filepath.Join(out, fmt.Sprint(i, ".rc")))
	}
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		// A command that never ends fails here, named, rather than as the test
		// binary's timeout.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Until(deadline)/20))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir, cmd.Env = work, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("the block's shell: %v %s", err, stderr.String())
	}
	for i, c := range cmds {
		read := func(ext string) string {
			data, _ := os.ReadFile(filepath.Join(out, fmt.Sprint(i, ext)))
			return string(data)
		}
		stdout, errOut, rc := read(".out"), read(".err"), strings.TrimSpace(read(".rc"))
		if rc != "0" {
			if rc == "" {
				rc = "none (did not finish)"
			}
			t.Errorf("README.md:%d: exit status %s\n$ %s\nstdout: %s\nstderr: %s", c.line, rc, c.text, stdout, errOut)
			continue
		}
		if len(c.expect) == 0 {
			continue
		}
		if err := matchShown(c.expect, stdout); err != nil {
			t.Errorf("README.md:%d: the output does not have the shape shown: %v\n$ %s\nshown: %s\ngot:   %s", c.line, err, c.text, strings.Join(c.expect, "\n       "), stdout)
		}
	}
}
