package domain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Mechanism is how a region treats a purpose nobody has decided on yet.
type Mechanism string

const (
	MechanismOptIn      Mechanism = "opt_in"      // denied until the subject grants it
	MechanismOptOut     Mechanism = "opt_out"     // granted until the subject (or GPC) denies it
	MechanismNoticeOnly Mechanism = "notice_only" // granted; the subject is only informed
)

// Purpose is one thing data is used for, as the policy file defines it.
type Purpose struct {
	ID           string            // e.g. "analytics", "marketing.email"; [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)? , max 64 chars
	Version      int               // >= 1; bumping it makes earlier decisions for this purpose stale
	Lifetime     time.Duration     // how long a decision lasts before re-asking; 0 = never expires
	GPC          bool              // a Global Privacy Control signal opts the subject out of it in opt-out regions
	AlwaysOptIn  bool              // undecided means denied in every region, whatever its mechanism (e.g. SMS under the US TCPA)
	Necessary    bool              // strictly necessary: always granted, cannot be denied (the "necessary" purpose)
	LegalBasis   string            // "consent", "legitimate_interest", "contract", "legal_obligation"
	Titles       map[string]string // by language ("en", "de", "fr"); "en" required
	Descriptions map[string]string // by language; "en" required
}

// Region is a set of places that share one consent mechanism.
type Region struct {
	ID        string
	Mechanism Mechanism
	Codes     []string // ISO 3166-1 alpha-2 ("DE") or ISO 3166-2 ("US-CA") codes that belong to it
}

// Policy is a parsed, validated policy file. Build it with ParsePolicy or
// LoadPolicy, which also build the lookup indexes; treat it as read-only
// afterwards, since it is shared by every request while it is in force.
type Policy struct {
	Version       string    // the policy file's own version label, recorded on every event, e.g. "2026-11-01"
	DefaultRegion string    // region ID used when a code is unknown or absent
	Purposes      []Purpose // in file order (the order UIs show them)
	Regions       []Region

	indexesBuilt bool           // false for a Policy written as a literal
	purposeIndex map[string]int // purpose ID -> index in Purposes
	codeIndex    map[string]int // region code -> index in Regions
	defaultIndex int            // index of DefaultRegion in Regions
	purposeIDs   []string
	nonNecessary []string
}

// Purpose returns the purpose with this id.
func (p *Policy) Purpose(id string) (Purpose, bool) {
	if !p.indexesBuilt {
		// A Policy written as a literal (in a test) has no indexes; a scan
		// keeps it usable without making every caller go through ParsePolicy.
		for _, pu := range p.Purposes {
			if pu.ID == id {
				return pu, true
			}
		}
		return Purpose{}, false
	}
	i, ok := p.purposeIndex[id]
	if !ok {
		return Purpose{}, false
	}
	return p.Purposes[i], true
}

// PurposeIDs returns every purpose id in file order. The slice is the
// caller's to keep or change.
func (p *Policy) PurposeIDs() []string {
	if !p.indexesBuilt {
		ids := make([]string, 0, len(p.Purposes))
		for _, pu := range p.Purposes {
			ids = append(ids, pu.ID)
		}
		return ids
	}
	return slices.Clone(p.purposeIDs)
}

// NonNecessaryPurposeIDs returns the ids of the purposes a subject can deny,
// in file order: what "withdraw everything" and "restrict" act on.
func (p *Policy) NonNecessaryPurposeIDs() []string {
	if !p.indexesBuilt {
		var ids []string
		for _, pu := range p.Purposes {
			if !pu.Necessary {
				ids = append(ids, pu.ID)
			}
		}
		return ids
	}
	return slices.Clone(p.nonNecessary)
}

// RegionFor resolves a region code: exact code match, else the country part
// of "US-CA" ("US"), else the default region. "" -> default region.
//
// The country fallback lets a file list "US-CA" for a state-level law and
// "US" for the rest of the country, and lets a GeoIP lookup that returns a
// subdivision the file does not list still land in its country's region.
func (p *Policy) RegionFor(code string) Region {
	if !p.indexesBuilt {
		return p.regionForScan(code)
	}
	if code != "" {
		if i, ok := p.codeIndex[code]; ok {
			return p.Regions[i]
		}
		if country, _, found := strings.Cut(code, "-"); found {
			if i, ok := p.codeIndex[country]; ok {
				return p.Regions[i]
			}
		}
	}
	if p.defaultIndex < 0 || p.defaultIndex >= len(p.Regions) {
		return Region{}
	}
	return p.Regions[p.defaultIndex]
}

func (p *Policy) regionForScan(code string) Region {
	find := func(c string) (Region, bool) {
		for _, r := range p.Regions {
			if slices.Contains(r.Codes, c) {
				return r, true
			}
		}
		return Region{}, false
	}
	if code != "" {
		if r, ok := find(code); ok {
			return r
		}
		if country, _, found := strings.Cut(code, "-"); found {
			if r, ok := find(country); ok {
				return r
			}
		}
	}
	for _, r := range p.Regions {
		if r.ID == p.DefaultRegion {
			return r
		}
	}
	// No default region: the zero Region has no mechanism, which Effective
	// treats as opt-in (the conservative answer).
	return Region{}
}

// buildIndexes makes every lookup a map access. Callers have validated that
// ids and codes are unique and the default region exists.
func (p *Policy) buildIndexes() {
	p.purposeIndex = make(map[string]int, len(p.Purposes))
	p.purposeIDs = make([]string, 0, len(p.Purposes))
	p.nonNecessary = make([]string, 0, len(p.Purposes))
	for i, pu := range p.Purposes {
		p.purposeIndex[pu.ID] = i
		p.purposeIDs = append(p.purposeIDs, pu.ID)
		if !pu.Necessary {
			p.nonNecessary = append(p.nonNecessary, pu.ID)
		}
	}
	p.codeIndex = make(map[string]int)
	p.defaultIndex = -1
	for i, r := range p.Regions {
		if r.ID == p.DefaultRegion {
			p.defaultIndex = i
		}
		for _, c := range r.Codes {
			p.codeIndex[c] = i
		}
	}
	p.indexesBuilt = true
}

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
	p.buildIndexes()
	return p, nil
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
	fields := ps.mapping(root, "", "version", "default_region", "purposes", "regions")
	if fields == nil {
		return nil
	}
	p := &Policy{}
	if n := ps.required(fields, root, "", "version"); n != nil {
		if v, ok := ps.label(n, "version"); ok {
			if !policyVersionPattern.MatchString(v) {
				ps.errorf(n.Line, "version", "must be 1-64 characters of A-Z a-z 0-9 . _ : + - (e.g. \"2026-11-01\"), got %s", short(v))
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
				ps.errorf(n.Line, "default_region", "no region with id %s", short(v))
			}
		}
	}
	return p
}

func (ps *policyParser) purposes(n *yaml.Node) []Purpose {
	items := ps.sequence(n, "purposes")
	if items == nil {
		return nil
	}
	if len(items) == 0 {
		ps.errorf(ps.keyLine(n), "purposes", "at least one purpose is required")
		return nil
	}
	var out []Purpose
	seen := map[string]int{} // id -> line
	necessary := 0
	for i, item := range items {
		path := fmt.Sprintf("purposes[%d]", i)
		pu, ok := ps.purpose(item, path)
		if !ok {
			continue
		}
		if pu.ID != "" {
			if line, dup := seen[pu.ID]; dup {
				ps.errorf(item.Line, path+".id", "duplicate purpose id %q (first at line %d)", pu.ID, line)
			} else {
				seen[pu.ID] = item.Line
			}
		}
		if pu.Necessary {
			necessary++
		}
		out = append(out, pu)
	}
	// The API, the SDK and the rules all assume one strictly necessary
	// purpose named "necessary"; purpose() already rejected any other name.
	if necessary == 0 {
		ps.errorf(ps.keyLine(n), "purposes", "exactly one purpose must be necessary: the one with id \"necessary\" and necessary: true; found none")
	}
	return out
}

func (ps *policyParser) purpose(n *yaml.Node, path string) (Purpose, bool) {
	fields := ps.mapping(n, path, "id", "version", "lifetime", "gpc", "always_opt_in", "necessary", "legal_basis", "titles", "descriptions")
	if fields == nil {
		return Purpose{}, false
	}
	var pu Purpose
	if v := ps.required(fields, n, path, "id"); v != nil {
		if id, ok := ps.identifier(v, path+".id", purposeIDPattern, "lower-case letters, digits and _, starting with a letter, with at most one dot (e.g. \"marketing.email\")"); ok {
			pu.ID = id
		}
	}
	if v := ps.required(fields, n, path, "version"); v != nil {
		if ver, ok := ps.integer(v, path+".version"); ok {
			if ver < 1 {
				ps.errorf(v.Line, path+".version", "must be >= 1, got %d", ver)
			}
			pu.Version = ver
		}
	}
	if v := fields["lifetime"]; v != nil {
		pu.Lifetime = ps.lifetime(v, path+".lifetime")
	}
	if v := fields["gpc"]; v != nil {
		pu.GPC, _ = ps.boolean(v, path+".gpc")
	}
	if v := fields["always_opt_in"]; v != nil {
		pu.AlwaysOptIn, _ = ps.boolean(v, path+".always_opt_in")
	}
	necessaryNode := fields["necessary"]
	if necessaryNode != nil {
		pu.Necessary, _ = ps.boolean(necessaryNode, path+".necessary")
	}
	if v := ps.required(fields, n, path, "legal_basis"); v != nil {
		if lb, ok := ps.str(v, path+".legal_basis"); ok {
			if !slices.Contains(legalBases, lb) {
				ps.errorf(v.Line, path+".legal_basis", "must be one of %s, got %s", strings.Join(legalBases, ", "), short(lb))
			}
			pu.LegalBasis = lb
		}
	}
	if v := ps.required(fields, n, path, "titles"); v != nil {
		pu.Titles = ps.texts(v, path+".titles")
	}
	if v := ps.required(fields, n, path, "descriptions"); v != nil {
		pu.Descriptions = ps.texts(v, path+".descriptions")
	}

	line := n.Line
	if necessaryNode != nil {
		line = necessaryNode.Line
	}
	switch {
	case pu.Necessary && pu.ID != "" && pu.ID != "necessary":
		ps.errorf(line, path+".necessary", "only the purpose with id \"necessary\" can be necessary, this one is %q", pu.ID)
	case !pu.Necessary && pu.ID == "necessary":
		ps.errorf(line, path+".necessary", "the purpose \"necessary\" must have necessary: true")
	case pu.Necessary && pu.GPC:
		// GPC would deny it, but a necessary purpose cannot be denied: the
		// file would promise something the service will not do.
		ps.errorf(fields["gpc"].Line, path+".gpc", "a necessary purpose cannot be opted out by GPC")
	case pu.Necessary && pu.AlwaysOptIn:
		// Opt-in would deny it until granted; a necessary purpose is always granted.
		ps.errorf(fields["always_opt_in"].Line, path+".always_opt_in", "a necessary purpose cannot be opt-in")
	}
	return pu, true
}

// lifetime accepts 0, a Go duration ("8760h") or whole days ("390d"):
// policy authors think in days and months, Go durations stop at hours.
func (ps *policyParser) lifetime(n *yaml.Node, path string) time.Duration {
	n = resolve(n)
	const format = `must be 0 (never expires), whole days like "390d" or a Go duration like "8760h"`
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		ps.errorf(n.Line, path, "%s, got %s", format, describe(n))
		return 0
	}
	s := n.Value
	if n.Tag == "!!int" {
		// A bare number has no unit: 30 could mean days or seconds. Only 0
		// is unambiguous.
		if s == "0" {
			return 0
		}
		ps.errorf(n.Line, path, "%s, got %s without a unit", format, s)
		return 0
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		nd, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			ps.errorf(n.Line, path, "%s, got %s", format, short(s))
			return 0
		}
		if nd > int64(math.MaxInt64/(24*time.Hour)) {
			ps.errorf(n.Line, path, "must be at most %d days, got %s", int64(math.MaxInt64/(24*time.Hour)), short(s))
			return 0
		}
		d = time.Duration(nd) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			ps.errorf(n.Line, path, "%s, got %s", format, short(s))
			return 0
		}
	}
	if d < 0 {
		ps.errorf(n.Line, path, "must be >= 0, got %s", short(s))
		return 0
	}
	return d
}

// texts reads a language -> text map. "en" is required because it is the
// fallback every UI can show when the visitor's language is missing.
func (ps *policyParser) texts(n *yaml.Node, path string) map[string]string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		ps.errorf(n.Line, path, "must be a mapping of language to text (e.g. {en: ..., de: ...}), got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k.Line, path, "language must be a string, got %s", describe(k))
			continue
		}
		lang := k.Value
		if line, dup := keyLines[lang]; dup {
			ps.errorf(k.Line, path+"."+lang, "duplicate language (first at line %d)", line)
			continue
		}
		keyLines[lang] = k.Line
		if !languagePattern.MatchString(lang) {
			ps.errorf(k.Line, path, "language %s must look like \"en\" or \"pt-BR\"", short(lang))
			continue
		}
		text, ok := ps.str(v, path+"."+lang)
		if !ok {
			continue
		}
		if strings.TrimSpace(text) == "" {
			ps.errorf(v.Line, path+"."+lang, "must not be empty")
			continue
		}
		out[lang] = text
	}
	if _, ok := keyLines["en"]; !ok {
		ps.errorf(n.Line, path+".en", "required: English is the fallback for every other language")
	}
	return out
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
					ps.errorf(v.Line, path+".mechanism", "must be one of opt_in, opt_out, notice_only, got %s", short(m))
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
					ps.errorf(c.Line, cpath, "must be an ISO 3166 code like \"DE\" or \"US-CA\" (upper case), got %s", short(code))
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
		ps.errorf(n.Line, path, "must be %s, got %s", rule, short(id))
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
			return "the string " + short(n.Value)
		case "!!int":
			return "the integer " + short(n.Value)
		case "!!float":
			return "the number " + short(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!timestamp":
			return "the timestamp " + short(n.Value)
		}
		return fmt.Sprintf("%s %s", n.Tag, short(n.Value))
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
	return short(key)
}

var fieldNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// short quotes s, cut to 32 characters, so a pasted paragraph in the wrong
// place does not flood the error.
func short(s string) string {
	const limit = 32
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	runes := []rune(s)
	return strconv.Quote(string(runes[:limit])) + "..."
}
