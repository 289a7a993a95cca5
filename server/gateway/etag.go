package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// Conditional requests (RFC 9110 section 13) for the two answers a browser
// revalidates: its consent and the policy. Each carries an ETag, and a GET
// whose If-None-Match matches it is answered 304 Not Modified without a body.
// The call still runs (a consent read is one HGETALL); what a match saves is
// the body on the wire and the SDK's work. REST only: gRPC clients have no
// HTTP cache.
//
// The consent's ETag is the answer in the SDK cookie's compact form (see
// encodeCookie in sdk-js/src/core/cookie.ts, whose value is "1|<subject id>|"
// followed by exactly this), so the SDK can revalidate straight from its
// cookie:
//
//	"<revision>|<purpose>:<letter>/<purpose>:<letter>/..."
//
// purposes in the answer's (the policy's) order, the letter the reason's
// code, upper case when allowed, e.g. "3|necessary:N/functional:e/analytics:E/ads:g".
// It says what the SDK keeps of an answer, not every byte of the body: two
// answers with the same ETag differ at most in what the SDK does not keep
// (the region's code and id when a request names another region, a
// decision's details). An answer the form cannot tell apart from another
// gets no ETag: one with a reason without a letter, and a linked visitor's
// (it reads its user's revision, which can equal its own: a new account
// created by the link is at revision 1 with the visitor's very decisions).
//
// The policy's ETag is a hash of the answer's body, the policy as sent, so a
// reloaded policy file with new content gets a new one even under the same
// version label. The body is hashed rather than the message: the JSON is
// made anyway and SHA-256 of its few KiB takes microseconds, while a
// deterministic encoding of the message (maps sorted) took 60% of the JSON's
// own time for the shipped policy.

// reasonLetters are the SDK cookie's reason codes (REASONS and CODES in
// sdk-js/src/core/cookie.ts), lower case.
var reasonLetters = map[consentv1.Reason]byte{
	consentv1.Reason_REASON_EXPLICIT:          'e',
	consentv1.Reason_REASON_DEFAULT:           'd',
	consentv1.Reason_REASON_GPC:               'g',
	consentv1.Reason_REASON_EXPIRED:           'x',
	consentv1.Reason_REASON_POLICY_CHANGED:    'p',
	consentv1.Reason_REASON_NECESSARY:         'n',
	consentv1.Reason_REASON_RESTRICTED:        'r',
	consentv1.Reason_REASON_AWAITING_GUARDIAN: 'a',
}

// Cache-Control of the two answers. Both may be stored and must be
// revalidated before every use (no-cache), which is what lets a browser's own
// HTTP cache send If-None-Match too. A person's consent is for their browser
// only (private): a shared cache must never hold it, whatever credentials
// the deployment uses. The policy is the same for everyone.
const (
	consentCacheControl = "private, no-cache"
	policyCacheControl  = "no-cache"
)

// setETag is the gateway's forward-response option: it gives the answers
// above their ETag and Cache-Control before they are written.
func setETag(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	switch m := m.(type) {
	case *consentv1.GetConsentResponse:
		w.Header().Set("Cache-Control", consentCacheControl)
		if etag := consentETag(m.GetConsent()); etag != "" {
			w.Header().Set("ETag", etag)
		}
	case *consentv1.GetPolicyResponse:
		w.Header().Set("Cache-Control", policyCacheControl)
		if cw, ok := w.(*conditionalWriter); ok {
			cw.hashBody = true
		}
	}
	return nil
}

// consentETag is c in the SDK cookie's compact form, quoted; "" when the
// form cannot stand for it (see above).
func consentETag(c *consentv1.Consent) string {
	if c == nil || c.GetLinked() {
		return ""
	}
	b := make([]byte, 0, 16+16*len(c.GetPurposes()))
	b = append(b, '"')
	b = strconv.AppendInt(b, c.GetRevision(), 10)
	b = append(b, '|')
	for i, p := range c.GetPurposes() {
		letter, ok := reasonLetters[p.GetReason()]
		if !ok || !compactID(p.GetPurpose()) {
			return ""
		}
		if p.GetAllowed() {
			letter -= 'a' - 'A'
		}
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, p.GetPurpose()...)
		b = append(b, ':', letter)
	}
	return string(append(b, '"'))
}

// compactID reports whether a purpose id can stand in the compact form
// unescaped: what the policy allows for ids (lower-case letters, digits, _
// and a dot), so that neither the form's separators nor a quote occur.
func compactID(id string) bool {
	if id == "" {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// bodyETag is the ETag of a body: 128 bits of its SHA-256, quoted.
func bodyETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// conditional serves GETs through a conditionalWriter: a 200 whose ETag the
// request's If-None-Match matches becomes a 304 Not Modified without a body.
// Other methods pass through untouched.
func conditional(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		cw := &conditionalWriter{ResponseWriter: w, ifNoneMatch: strings.Join(r.Header.Values("If-None-Match"), ",")}
		next.ServeHTTP(cw, r)
		cw.finish()
	})
}

// conditionalWriter decides between 200 and 304 when the status is written:
// with an ETag that ifNoneMatch matches, a 200 becomes a 304 that keeps the
// headers (ETag, Cache-Control, X-Request-Id, CORS) but those describing a
// body, and drops the body. With hashBody (set by setETag) it holds the body
// back until the handler is done, to give it its hash as ETag first.
type conditionalWriter struct {
	http.ResponseWriter
	ifNoneMatch string // "" when the request has none
	hashBody    bool
	status      int    // written so far; 0: nothing yet
	notModified bool   // the body is dropped
	held        []byte // the body, while hashBody holds it back
	heldStatus  int
}

func (w *conditionalWriter) WriteHeader(code int) {
	if w.status != 0 {
		return // as net/http: the first status counts
	}
	if w.hashBody && code == http.StatusOK {
		w.heldStatus = code
		return
	}
	w.writeStatus(code)
}

// writeStatus writes the status line, a 304 instead of a 200 whose ETag
// matches.
func (w *conditionalWriter) writeStatus(code int) {
	if etag := w.Header().Get("ETag"); code == http.StatusOK && etag != "" && w.ifNoneMatch != "" && noneMatchHits(w.ifNoneMatch, etag) {
		w.notModified = true
		code = http.StatusNotModified
		for _, h := range []string{"Content-Type", "Content-Length", "Transfer-Encoding", "Trailer"} {
			w.Header().Del(h)
		}
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *conditionalWriter) Write(b []byte) (int, error) {
	if w.status == 0 && w.hashBody {
		w.heldStatus = http.StatusOK
		w.held = append(w.held, b...)
		return len(b), nil
	}
	if w.status == 0 {
		w.writeStatus(http.StatusOK)
	}
	if w.notModified {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// finish writes a held-back body, with its hash as ETag.
func (w *conditionalWriter) finish() {
	if w.status != 0 || w.heldStatus == 0 {
		return
	}
	w.Header().Set("ETag", bodyETag(w.held))
	w.writeStatus(w.heldStatus)
	if !w.notModified {
		_, _ = w.ResponseWriter.Write(w.held)
	}
}

// Flush keeps streaming answers (the change feed) streaming.
func (w *conditionalWriter) Flush() {
	if w.hashBody || w.notModified {
		return
	}
	if w.status == 0 {
		w.writeStatus(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *conditionalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noneMatchHits reports whether an If-None-Match value matches etag (a
// strong entity tag): "*", or a comma-separated list of entity tags one of
// which has etag's opaque tag. The comparison is the weak one, as RFC 9110
// (13.1.2) requires for If-None-Match: W/"x" matches "x", so a tag a proxy
// weakened (compressing the body, say) still revalidates. A malformed value
// matches nothing: the answer is a 200, never an error.
func noneMatchHits(value, etag string) bool {
	if strings.TrimSpace(value) == "*" {
		return true
	}
	opaque := etag
	hit := false
	rest := value
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return hit
		}
		rest = strings.TrimPrefix(rest, "W/")
		if rest == "" || rest[0] != '"' {
			return false
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return false
		}
		tag := rest[:end+2]
		for i := 1; i < len(tag)-1; i++ {
			if c := tag[i]; c < 0x21 || c == 0x7f { // etagc: %x21 / %x23-7E / obs-text
				return false
			}
		}
		hit = hit || tag == opaque
		rest = strings.TrimLeft(rest[end+2:], " \t")
		if rest != "" && rest[0] != ',' {
			return false
		}
	}
}
