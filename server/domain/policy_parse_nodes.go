package domain

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// mapping checks that n is a mapping holding only the allowed keys, each at
// most once, and returns the values by key; nil if n is not a mapping.
func (ps *policyParser) mapping(n *yaml.Node, path string, allowed ...string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		what := path
		if what == "" {
			what = "policy"
		}
		ps.errorf(n.Line, what, "must be a mapping with keys %s, got %s", strings.Join(allowed, ", "), describe(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		key := k.Value
		field := join(path, key)
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k.Line, path, "keys must be strings, got %s", describe(k))
			continue
		}
		if !slices.Contains(allowed, key) {
			ps.errorf(k.Line, join(path, fieldName(key)), "unknown field (allowed: %s)", strings.Join(allowed, ", "))
			continue
		}
		if line, dup := keyLines[key]; dup {
			ps.errorf(k.Line, field, "duplicate field (first at line %d)", line)
			continue
		}
		keyLines[key] = k.Line
		out[key] = n.Content[i+1]
		ps.keyLines[resolve(n.Content[i+1])] = k.Line
	}
	return out
}

// required returns fields[key] or records that it is missing. A key with an
// empty value ("version:") counts as missing.
func (ps *policyParser) required(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) *yaml.Node {
	v := fields[key]
	if v == nil {
		ps.errorf(resolve(parent).Line, join(path, key), "required")
		return nil
	}
	if isNull(resolve(v)) {
		ps.errorf(v.Line, join(path, key), "required, got an empty value")
		return nil
	}
	return resolve(v)
}

func (ps *policyParser) sequence(n *yaml.Node, path string) []*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n.Line, path, "must be a list, got %s", describe(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// identifier reads an id: a string of at most maxIDLength characters that
// matches pattern (described by rule in the error). ok is false when it is
// not a valid id, and the error is recorded.
func (ps *policyParser) identifier(n *yaml.Node, path string, pattern *regexp.Regexp, rule string) (string, bool) {
	id, ok := ps.str(n, path)
	switch {
	case !ok:
		return "", false
	case len(id) > maxIDLength:
		ps.errorf(n.Line, path, "must be at most %d characters, got %d", maxIDLength, len(id))
		return "", false
	case !pattern.MatchString(id):
		ps.errorf(n.Line, path, "must be %s, got %s", rule, Quote(id, maxPolicyEcho))
		return "", false
	}
	return id, true
}

func (ps *policyParser) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		ps.errorf(n.Line, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// label reads a free-form label. YAML reads an unquoted 2026-11-01 as a
// timestamp and 3 as an integer; both are obviously meant as text.
func (ps *policyParser) label(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!str", "!!int", "!!float", "!!timestamp":
			return n.Value, true
		}
	}
	ps.errorf(n.Line, path, "must be a string, got %s", describe(n))
	return "", false
}

func (ps *policyParser) integer(n *yaml.Node, path string) (int, bool) {
	n = resolve(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		ps.errorf(n.Line, path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	return v, true
}

func (ps *policyParser) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		ps.errorf(n.Line, path, "must be true or false, got %s", describe(n))
		return false, false
	}
	return v, true
}

// resolve follows aliases (*anchor), so a file may reuse a block of text.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names a node's type and, for scalars, a short form of its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "an empty value"
		case "!!str":
			return "the string " + Quote(n.Value, maxPolicyEcho)
		case "!!int":
			return "the integer " + Quote(n.Value, maxPolicyEcho)
		case "!!float":
			return "the number " + Quote(n.Value, maxPolicyEcho)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!timestamp":
			return "the timestamp " + Quote(n.Value, maxPolicyEcho)
		}
		return fmt.Sprintf("%s %s", n.Tag, Quote(n.Value, maxPolicyEcho))
	}
	return "an unexpected YAML node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldName shows an unknown key as written when it looks like a field name,
// and quoted otherwise, so odd characters cannot hide in the path.
func fieldName(key string) string {
	if fieldNamePattern.MatchString(key) {
		return key
	}
	return Quote(key, maxPolicyEcho)
}

var fieldNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// maxPolicyEcho bounds a value from the file quoted in an error, so a pasted
// paragraph in the wrong place does not flood the error.
const maxPolicyEcho = 32
