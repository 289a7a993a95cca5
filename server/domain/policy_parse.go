package domain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadPolicy reads and parses a policy file. Every error line starts with
// the path, so an operator can jump straight to it.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError already names the path
	}
	return parsePolicy(data, path)
}

// ParsePolicy parses and validates a policy file. It is strict: unknown
// fields, wrong types and broken rules are all errors, and it reports every
// problem it finds (one per line, each with its YAML line and field path)
// so that a bad file can be fixed in one pass rather than one error at a time.
func ParsePolicy(data []byte) (*Policy, error) {
	return parsePolicy(data, "")
}

// Validation patterns. Purpose ids become Redis hash fields, proto map keys
// and SDK `data-consent` attribute values, so they stay a small, safe alphabet.
var (
	purposeIDPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$`)
	regionIDPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	regionCodePattern = regexp.MustCompile(`^[A-Z]{2}(-[A-Z0-9]{1,3})?$`)
	// BCP 47-ish: "en", "pt-BR", "es-419", "zh-Hant". Enough to catch typos
	// such as "EN" or "en_US" without a full language-tag parser.
	languagePattern = regexp.MustCompile(`^[a-z]{2,3}(-([A-Z]{2}|[0-9]{3}|[A-Z][a-z]{3}))?$`)
	// The version label is written into every event and served over HTTP, so
	// it is kept short and free of spaces and control characters.
	policyVersionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$`)
	yamlErrorLine        = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// maxIDLength bounds purpose and region ids: they are map keys in every
// stored record and event, so they stay short.
const maxIDLength = 64

var legalBases = []string{"consent", "legitimate_interest", "contract", "legal_obligation"}

var mechanismNames = []Mechanism{MechanismOptIn, MechanismOptOut, MechanismNoticeOnly}

// policyParser walks the YAML node tree by hand rather than decoding into
// structs: yaml.v3 only knows line numbers on nodes, and Node.Decode cannot
// reject unknown fields, so walking is the only way to get both.
type policyParser struct {
	file     string // prefix of every error; "" when parsing bytes
	errs     []lineError
	keyLines map[*yaml.Node]int // value node -> line of its key
}

// keyLine is the line of the key a value belongs to: a block list starts on
// the line after its key, but "purposes: ..." is where a reader looks.
func (ps *policyParser) keyLine(value *yaml.Node) int {
	if line, ok := ps.keyLines[value]; ok {
		return line
	}
	return value.Line
}

func (ps *policyParser) errorf(line int, path, format string, args ...any) {
	var b strings.Builder
	if ps.file != "" {
		b.WriteString(ps.file)
		b.WriteString(": ")
	}
	if line > 0 {
		fmt.Fprintf(&b, "line %d: ", line)
	}
	if path != "" {
		b.WriteString(path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, format, args...)
	ps.errs = append(ps.errs, lineError{line: line, err: errors.New(b.String())})
}

type lineError struct {
	line int
	err  error
}

// err joins every problem found, in file order, one a line.
func (ps *policyParser) err() error {
	slices.SortStableFunc(ps.errs, func(a, b lineError) int { return a.line - b.line })
	errs := make([]error, len(ps.errs))
	for i, e := range ps.errs {
		errs[i] = e.err
	}
	return errors.Join(errs...)
}

func parsePolicy(data []byte, file string) (*Policy, error) {
	ps := &policyParser{file: file, keyLines: map[*yaml.Node]int{}}
	root := ps.document(data)
	if root == nil {
		return nil, ps.err()
	}
	p := ps.policy(root)
	if len(ps.errs) > 0 {
		return nil, ps.err()
	}
	np := newPolicy(p.Version, p.DefaultRegion, p.Purposes, p.Regions)
	np.IAB = p.IAB
	return np, nil
}

// document returns the single top-level node of data, or nil after
// recording why there is none.
func (ps *policyParser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.errorf(1, "", "the policy file is empty")
			return nil
		}
		ps.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.errorf(extra.Line, "", "the policy file must hold one YAML document, found another")
		return nil
	} else if !errors.Is(err, io.EOF) {
		ps.yamlError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			ps.errorf(1, "", "the policy file is empty")
			return nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		ps.errorf(1, "", "the policy file is empty")
		return nil
	}
	return root
}

func (ps *policyParser) yamlError(err error) {
	msg := err.Error()
	if m := yamlErrorLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		ps.errorf(line, "", "not valid YAML: %s", m[2])
		return
	}
	ps.errorf(0, "", "not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func (ps *policyParser) policy(root *yaml.Node) *Policy {
	fields := ps.mapping(root, "", "version", "default_region", "purposes", "regions", "iab")
	if fields == nil {
		return nil
	}
	p := &Policy{}
	if n := ps.required(fields, root, "", "version"); n != nil {
		if v, ok := ps.label(n, "version"); ok {
			if !policyVersionPattern.MatchString(v) {
				ps.errorf(n.Line, "version", "must be 1-64 characters of A-Z a-z 0-9 . _ : + - (e.g. \"2026-11-01\"), got %s", Quote(v, maxPolicyEcho))
			}
			p.Version = v
		}
	}
	if n := ps.required(fields, root, "", "purposes"); n != nil {
		p.Purposes = ps.purposes(n)
	}
	regionLines := map[string]int{}
	if n := ps.required(fields, root, "", "regions"); n != nil {
		p.Regions = ps.regions(n, regionLines)
	}
	if n := ps.required(fields, root, "", "default_region"); n != nil {
		if v, ok := ps.str(n, "default_region"); ok {
			p.DefaultRegion = v
			// Only judge the reference when the regions themselves parsed,
			// or a typo in regions would also be blamed on default_region.
			if _, ok := regionLines[v]; !ok && len(p.Regions) > 0 {
				ps.errorf(n.Line, "default_region", "no region with id %s", Quote(v, maxPolicyEcho))
			}
		}
	}
	if n := fields["iab"]; n != nil {
		p.IAB = ps.iab(n, p.Purposes, p.Regions, regionLines)
	}
	return p
}

func (ps *policyParser) regions(n *yaml.Node, ids map[string]int) []Region {
	items := ps.sequence(n, "regions")
	if items == nil {
		return nil
	}
	if len(items) == 0 {
		ps.errorf(ps.keyLine(n), "regions", "at least one region is required")
		return nil
	}
	type codeOwner struct {
		region string
		line   int
	}
	codes := map[string]codeOwner{}
	var out []Region
	for i, item := range items {
		path := fmt.Sprintf("regions[%d]", i)
		fields := ps.mapping(item, path, "id", "mechanism", "codes")
		if fields == nil {
			continue
		}
		var r Region
		if v := ps.required(fields, item, path, "id"); v != nil {
			if id, ok := ps.identifier(v, path+".id", regionIDPattern, "lower-case letters, digits and _, starting with a letter"); ok {
				if line, dup := ids[id]; dup {
					ps.errorf(v.Line, path+".id", "duplicate region id %q (first at line %d)", id, line)
				} else {
					ids[id] = v.Line
				}
				r.ID = id
			}
		}
		if v := ps.required(fields, item, path, "mechanism"); v != nil {
			if m, ok := ps.str(v, path+".mechanism"); ok {
				if !slices.Contains(mechanismNames, Mechanism(m)) {
					ps.errorf(v.Line, path+".mechanism", "must be one of opt_in, opt_out, notice_only, got %s", Quote(m, maxPolicyEcho))
				}
				r.Mechanism = Mechanism(m)
			}
		}
		// codes may be absent or empty: the default region usually needs none.
		if v := fields["codes"]; v != nil && !isNull(resolve(v)) {
			list := ps.sequence(v, path+".codes")
			for j, c := range list {
				cpath := fmt.Sprintf("%s.codes[%d]", path, j)
				code, ok := ps.str(c, cpath)
				if !ok {
					continue
				}
				if !regionCodePattern.MatchString(code) {
					ps.errorf(c.Line, cpath, "must be an ISO 3166 code like \"DE\" or \"US-CA\" (upper case), got %s", Quote(code, maxPolicyEcho))
					continue
				}
				if owner, dup := codes[code]; dup {
					if owner.region == r.ID {
						ps.errorf(c.Line, cpath, "duplicate code %q (first at line %d)", code, owner.line)
					} else {
						ps.errorf(c.Line, cpath, "code %q is already in region %q (line %d); a code can belong to one region only", code, owner.region, owner.line)
					}
					continue
				}
				codes[code] = codeOwner{region: r.ID, line: c.Line}
				r.Codes = append(r.Codes, code)
			}
		}
		out = append(out, r)
	}
	return out
}
