package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// matchShown compares output with the shape the README shows for it.
func matchShown(shown []string, output string) error {
	joined := strings.TrimSpace(strings.Join(shown, ""))
	if strings.HasPrefix(joined, "{") || strings.HasPrefix(joined, "[") {
		p := &shapeParser{s: joined}
		pattern, err := p.value()
		if err == nil && p.skipSpace() < len(p.s) {
			err = fmt.Errorf("unexpected %q after the value", p.s[p.i:])
		}
		if err != nil {
			return fmt.Errorf("the README's output comment does not parse: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(output))
		dec.UseNumber()
		var got any
		if err := dec.Decode(&got); err != nil {
			return fmt.Errorf("not JSON: %v", err)
		}
		if dec.More() {
			return errors.New("more than one JSON value")
		}
		return pattern.match(got, "$")
	}
	lines := strings.Split(strings.ReplaceAll(output, "\r\n", "\n"), "\n")
	for i, want := range shown {
		want = strings.TrimSpace(want)
		if i >= len(lines) || !globMatch(want, strings.TrimSpace(lines[i])) {
			return fmt.Errorf("line %d is not %q", i+1, want)
		}
	}
	return nil
}

// shape is a JSON value as the README shows it, "…" a wildcard.
type shape struct {
	kind    byte // '*' anything, '{', '[', '"', 'l' a literal (number, true, false, null)
	members map[string]*shape
	keys    []string
	elems   []*shape
	open    bool // "…" among the members or elements: more may be there
	text    string
}

func (s *shape) match(got any, path string) error {
	gotJSON, _ := json.Marshal(got)
	switch s.kind {
	case '*':
		return nil
	case '{':
		obj, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %s", path, gotJSON)
		}
		for _, k := range s.keys {
			v, ok := obj[k]
			if !ok {
				return fmt.Errorf("%s: no member %q", path, k)
			}
			if err := s.members[k].match(v, path+"."+k); err != nil {
				return err
			}
		}
		if !s.open {
			for k := range obj {
				if _, ok := s.members[k]; !ok {
					return fmt.Errorf("%s: member %q is not shown (add it, or \"…\")", path, k)
				}
			}
		}
		return nil
	case '[':
		arr, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %s", path, gotJSON)
		}
		if !s.open {
			if len(arr) != len(s.elems) {
				return fmt.Errorf("%s: %d elements, shown %d", path, len(arr), len(s.elems))
			}
			for i, e := range s.elems {
				if err := e.match(arr[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			return nil
		}
		j := 0
		for i, e := range s.elems {
			for j < len(arr) && e.match(arr[j], "") != nil {
				j++
			}
			if j == len(arr) {
				return fmt.Errorf("%s: no element, in order, matches the %d. shown", path, i+1)
			}
			j++
		}
		return nil
	case '"':
		str, ok := got.(string)
		if !ok || !globMatch(s.text, str) {
			return fmt.Errorf("%s: want %q, got %s", path, s.text, gotJSON)
		}
		return nil
	default:
		if string(gotJSON) != s.text {
			return fmt.Errorf("%s: want %s, got %s", path, s.text, gotJSON)
		}
		return nil
	}
}

// globMatch matches s against pattern, where "…" matches any characters.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "…")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

type shapeParser struct {
	s string
	i int
}

const ellipsis = "…"

func (p *shapeParser) skipSpace() int {
	for p.i < len(p.s) && strings.ContainsRune(" \t\n\r", rune(p.s[p.i])) {
		p.i++
	}
	return p.i
}

func (p *shapeParser) value() (*shape, error) {
	p.skipSpace()
	rest := p.s[p.i:]
	switch {
	case rest == "":
		return nil, errors.New("unexpected end")
	case strings.HasPrefix(rest, ellipsis):
		p.i += len(ellipsis)
		return &shape{kind: '*'}, nil
	case rest[0] == '{':
		p.i++
		s := &shape{kind: '{', members: map[string]*shape{}}
		for first := true; ; first = false {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == '}' && first {
				p.i++
				return s, nil
			}
			if strings.HasPrefix(p.s[p.i:], ellipsis) {
				p.i += len(ellipsis)
				s.open = true
			} else {
				key, err := p.str()
				if err != nil {
					return nil, err
				}
				if p.skipSpace(); p.i >= len(p.s) || p.s[p.i] != ':' {
					return nil, fmt.Errorf("want ':' after %q", key)
				}
				p.i++
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				s.keys, s.members[key] = append(s.keys, key), v
			}
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return s, nil
			}
			return nil, fmt.Errorf("want ',' or '}' at %q", p.s[p.i:])
		}
	case rest[0] == '[':
		p.i++
		s := &shape{kind: '['}
		for first := true; ; first = false {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ']' && first {
				p.i++
				return s, nil
			}
			if strings.HasPrefix(p.s[p.i:], ellipsis) {
				p.i += len(ellipsis)
				s.open = true
			} else {
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				s.elems = append(s.elems, v)
			}
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == ']' {
				p.i++
				return s, nil
			}
			return nil, fmt.Errorf("want ',' or ']' at %q", p.s[p.i:])
		}
	case rest[0] == '"':
		text, err := p.str()
		return &shape{kind: '"', text: text}, err
	default:
		m := regexp.MustCompile(`^(true|false|null|-?[0-9][0-9.eE+-]*)`).FindString(rest)
		if m == "" {
			return nil, fmt.Errorf("unexpected %q", rest)
		}
		p.i += len(m)
		return &shape{kind: 'l', text: m}, nil
	}
}

// str reads a JSON string (which may hold "…").
func (p *shapeParser) str() (string, error) {
	p.skipSpace()
	dec := json.NewDecoder(strings.NewReader(p.s[p.i:]))
	var s string
	if err := dec.Decode(&s); err != nil {
		return "", fmt.Errorf("want a string at %q", p.s[p.i:])
	}
	p.i += int(dec.InputOffset())
	return s, nil
}
