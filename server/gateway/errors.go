package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/consentd/consentd/server/middleware"
)

// Every error the HTTP port gives has one shape, whichever layer made it:
// grpc-gateway's {"code", "message", "details"}, the message starting with
// the field at fault in the API's JSON names ("decisions.analytics: must be
// true or false"), an HTTP status that says what went wrong, the request's
// X-Request-Id, and one log line. Errors from the service are logged by its
// interceptors; the ones made here, before the service, are logged here.

// apiError is an error made before the service: the body, the query, the
// route, the Content-Type.
type apiError struct {
	httpStatus int
	code       codes.Code
	field      string // the field at fault, as the API's JSON names it
	problem    string // what is wrong with it: "must be true or false"
}

func (e *apiError) Error() string { return e.field + ": " + e.problem }

func (e *apiError) status() *status.Status {
	st := status.New(e.code, e.Error())
	if e.code != codes.InvalidArgument {
		return st
	}
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.field, Description: e.problem}},
	}); err == nil {
		return withDetails
	}
	return st
}

func badRequest(field, problem string) *apiError {
	return &apiError{httpStatus: http.StatusBadRequest, code: codes.InvalidArgument, field: field, problem: problem}
}

// requestInfo is what the layers of one request tell each other.
type requestInfo struct {
	// bodyErr is what was wrong with the body, found while reading or
	// decoding it. grpc-gateway passes the decoder's error on as a plain
	// message; this keeps its status and field.
	bodyErr *apiError
}

type requestInfoKey struct{}

func infoOf(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// withRequestID gives every request an id before anything can fail: the
// caller's X-Request-Id if it is a valid one, or a new one. It is answered
// in X-Request-Id, and goes on to the service as the same header, which
// keeps it (middleware.UnaryRequestID), so one id names a request in the
// answer and in every log line.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !middleware.ValidRequestID(id) {
			id = middleware.NewRequestID()
		}
		r.Header.Set("X-Request-Id", id)
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(middleware.WithRequestID(r.Context(), id), requestInfoKey{}, &requestInfo{})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// errors answers and logs the errors made on the HTTP port.
type errorWriter struct {
	mux       *runtime.ServeMux
	marshaler runtime.Marshaler
	logger    *slog.Logger
}

// write answers err (a status error, or an *apiError) with httpStatus, and
// logs it: with no IP, path, query or body, so no subject id or token.
func (e *errorWriter) write(w http.ResponseWriter, r *http.Request, httpStatus int, st *status.Status) {
	ctx := r.Context()
	level := slog.LevelInfo
	if httpStatus >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("http_method", r.Method),
		slog.Int("status", httpStatus),
		slog.String("code", st.Code().String()),
		slog.String("request_id", middleware.RequestID(ctx)),
	}
	if method, ok := runtime.RPCMethod(ctx); ok {
		attrs = append(attrs, slog.String("method", method))
	}
	e.logger.LogAttrs(ctx, level, "request refused before the service", attrs...)
	runtime.DefaultHTTPErrorHandler(ctx, e.mux, e.marshaler, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: st.Err()})
}

func (e *errorWriter) writeAPIError(w http.ResponseWriter, r *http.Request, err *apiError) {
	e.write(w, r, err.httpStatus, err.status())
}

// handle is grpc-gateway's error handler. It maps statuses to HTTP as the
// README's Errors table says: grpc-gateway's defaults, except
// FailedPrecondition (min_revision not reached) which is 412. Errors the
// gateway makes itself while reading the request (the body, the query) say
// which field is at fault and why, and get logged here as the service never
// saw them.
func (e *errorWriter) handle(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	if info := infoOf(r.Context()); info != nil && info.bodyErr != nil {
		e.writeAPIError(w, r, info.bodyErr)
		return
	}
	if st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		// The query parser's errors are *apiError messages (queryParser);
		// anything else grpc-gateway says about the request is its own
		// wording, not shown.
		field, problem, ok := strings.Cut(st.Message(), ": ")
		if !ok || !fieldPath.MatchString(field) {
			field, problem = "query", "not valid for this call"
		}
		e.writeAPIError(w, r, badRequest(field, problem))
		return
	}
	if _, reached := serviceAnswered(ctx); !reached {
		// The service never saw it (e.g. the in-process connection is
		// closing at shutdown): its interceptors logged nothing.
		e.write(w, r, runtime.HTTPStatusFromCode(st.Code()), st)
		return
	}
	if st.Code() == codes.FailedPrecondition {
		err = &runtime.HTTPStatusError{HTTPStatus: http.StatusPreconditionFailed, Err: err}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// serviceAnswered tells whether the call reached the service: its request
// id interceptor always answers the id in the response headers.
func serviceAnswered(ctx context.Context) (string, bool) {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return "", false
	}
	ids := md.HeaderMD.Get(middleware.RequestIDKey)
	if len(ids) == 0 {
		return "", false
	}
	return ids[0], true
}

var fieldPath = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// routing answers a path or method the API does not have with its own
// HTTP status (grpc-gateway's default turns 405 into 501).
func (e *errorWriter) routing(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	e.writeRoutingError(w, r, httpStatus)
}

func (e *errorWriter) writeRoutingError(w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		e.write(w, r, httpStatus, status.New(codes.NotFound, "path: no such path in the API"))
	case http.StatusMethodNotAllowed:
		e.write(w, r, httpStatus, status.New(codes.Unimplemented, "method: "+r.Method+" is not allowed on this path"))
	default:
		e.write(w, r, httpStatus, status.New(codes.InvalidArgument, "request: "+strings.ToLower(http.StatusText(httpStatus))))
	}
}

// unmatched answers what http.ServeMux has no route for (a 404, or a 405
// with its Allow header) in the API's error shape instead of its text.
func (e *errorWriter) unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status != http.StatusNotFound && rec.status != http.StatusMethodNotAllowed {
			mux.ServeHTTP(w, r) // a redirect to the cleaned path
			return
		}
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		e.writeRoutingError(w, r, rec.status)
	})
}

type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(p), nil
}
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// strictBody refuses, before grpc-gateway reads them, a body on a call that
// takes none (GET, DELETE: grpc-gateway would ignore it) and a body whose
// Content-Type says it is not JSON. No Content-Type, text/plain (what the
// SDK sends, to stay a CORS simple request: no preflight) and
// application/x-www-form-urlencoded (curl -d's default, as in the README)
// are read as JSON.
func (e *errorWriter) strictBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodDelete:
			if hasBody(r) {
				e.writeAPIError(w, r, badRequest("body", r.Method+" takes no body: send its parameters in the path and query"))
				return
			}
		default:
			if !jsonContentType(r.Header.Get("Content-Type")) {
				e.writeAPIError(w, r, &apiError{httpStatus: http.StatusUnsupportedMediaType, code: codes.InvalidArgument,
					field: "Content-Type", problem: "must be application/json (or none: the body is read as JSON)"})
				return
			}
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &bodyReader{ReadCloser: r.Body, info: infoOf(r.Context())}
		}
		next.ServeHTTP(w, r)
	})
}

func hasBody(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return false
	}
	if r.ContentLength > 0 {
		return true
	}
	var b [1]byte
	n, _ := io.ReadFull(r.Body, b[:])
	return n > 0
}

func jsonContentType(header string) bool {
	if header == "" {
		return true
	}
	mediaType, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || mediaType == "text/plain" ||
		mediaType == "application/x-www-form-urlencoded" || strings.HasSuffix(mediaType, "+json")
}

// bodyReader is a request body that carries its request's info to the
// decoder, which grpc-gateway hands only the body.
type bodyReader struct {
	io.ReadCloser
	info *requestInfo
}

// decodeBody reads a request body strictly: one JSON value, nothing after
// it (grpc-gateway's decoder stops after the first value and would drop
// the rest, so `{...} xyz` and two objects back to back were accepted).
func (m compactJSON) decodeBody(r io.Reader, v any) error {
	var info *requestInfo
	if br, ok := r.(*bodyReader); ok {
		info = br.info
	}
	err := m.decode(r, v)
	if bad, ok := errors.AsType[*apiError](err); ok && info != nil {
		info.bodyErr = bad
	}
	return err
}

func (m compactJSON) decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return bodyReadError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return io.EOF // no body: the call's fields come from the path
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return badRequest("body", "not valid JSON"+at(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("body", "must be one JSON value with nothing after it")
	}
	msg, ok := v.(proto.Message)
	if !ok {
		if err := m.JSONPb.Unmarshal(raw, v); err != nil {
			return badRequest("body", "not valid for this call")
		}
		return nil
	}
	if err := m.UnmarshalOptions.Unmarshal(raw, msg); err != nil {
		return protoProblem(msg, raw, err)
	}
	return nil
}

// bodyReadError is what stopped a body from being read: too large (the
// MaxBytesHandler), too slow (the server's ReadTimeout), or the client
// gone. Its text names the sockets, so none of it is shown.
func bodyReadError(err error) *apiError {
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &apiError{httpStatus: http.StatusRequestEntityTooLarge, code: codes.ResourceExhausted, field: "body",
			problem: fmt.Sprintf("larger than the limit of %d bytes", tooLarge.Limit)}
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		return &apiError{httpStatus: http.StatusRequestTimeout, code: codes.DeadlineExceeded, field: "body",
			problem: "not received in time: the whole request must arrive within the server's read timeout"}
	}
	return badRequest("body", "could not be read to its end")
}

// at says where in data a JSON syntax error is, as line and column.
func at(data []byte, err error) string {
	syntax, ok := errors.AsType[*json.SyntaxError](err)
	if !ok {
		return ": it ends too early"
	}
	// Offset counts the byte that broke the syntax.
	offset := int(max(0, min(syntax.Offset-1, int64(len(data)))))
	line := 1 + bytes.Count(data[:offset], []byte("\n"))
	col := offset - bytes.LastIndexByte(data[:offset], '\n')
	return fmt.Sprintf(" (line %d, column %d)", line, col)
}

var protoPosition = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// protoProblem turns protojson's error, which names a field by its
// camelCase JSON name or as "value" inside a map and quotes Go's kinds,
// into the path the caller wrote and what the field must be.
func protoProblem(msg proto.Message, data []byte, err error) *apiError {
	text := err.Error()
	m := protoPosition.FindStringSubmatch(text)
	if m == nil {
		return badRequest("body", "not valid for this call")
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	path := pathAt(data, offsetOf(data, line, col))
	if len(path) == 0 {
		return badRequest("body", "must be a JSON object")
	}
	field := path.String()
	switch {
	case strings.Contains(text, "unknown field"):
		return badRequest(field, "unknown field")
	case strings.Contains(text, "duplicate"):
		return badRequest(field, "given twice")
	}
	if fd, elem := resolve(msg.ProtoReflect().Descriptor(), path); fd != nil {
		return badRequest(field, "must be "+expected(fd, elem))
	}
	return badRequest(field, "not valid here")
}

// offsetOf converts protojson's position (1-based line, and column in
// runes) into a byte offset.
func offsetOf(data []byte, line, col int) int {
	offset := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(data[offset:], '\n')
		if i < 0 {
			return len(data)
		}
		offset += i + 1
	}
	for ; col > 1 && offset < len(data); col-- {
		_, size := utf8.DecodeRune(data[offset:])
		offset += size
	}
	return offset
}

type pathElem struct {
	key   string
	index int // when key is ""
}

type jsonPath []pathElem

func (p jsonPath) String() string {
	var b strings.Builder
	for _, e := range p {
		if e.key == "" {
			fmt.Fprintf(&b, "[%d]", e.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.key)
	}
	return b.String()
}

// pathAt is the path of the JSON value or key that covers offset in data,
// which is valid JSON.
func pathAt(data []byte, offset int) jsonPath {
	type frame struct {
		object  bool
		wantKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []frame
	var path jsonPath
	for {
		tok, err := dec.Token()
		if err != nil {
			return path
		}
		end := int(dec.InputOffset())
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		closing := tok == json.Delim('}') || tok == json.Delim(']')
		switch {
		case closing:
		case top != nil && top.object && top.wantKey:
			path[len(path)-1].key = tok.(string)
			top.wantKey = false
			if offset < end {
				return path
			}
			continue
		case top != nil && !top.object:
			path[len(path)-1].index++
		}
		if offset < end && !closing {
			return path
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
			path = append(path, pathElem{key: "?"})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			path = append(path, pathElem{index: -1})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack, path = stack[:len(stack)-1], path[:len(path)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// resolve finds the field path names in md; elem tells that the path goes
// into the field's list element or map value.
func resolve(md protoreflect.MessageDescriptor, path jsonPath) (fd protoreflect.FieldDescriptor, elem bool) {
	for _, e := range path {
		switch {
		case fd != nil && !elem && (fd.IsList() && e.key == "" || fd.IsMap() && e.key != ""):
			elem = true
			continue
		case e.key == "":
			return nil, false
		case fd != nil:
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Message() == nil {
				return nil, false
			}
			md = fd.Message()
		}
		next := md.Fields().ByJSONName(e.key)
		if next == nil {
			next = md.Fields().ByName(protoreflect.Name(e.key))
		}
		if next == nil {
			return nil, false
		}
		fd, elem = next, false
	}
	return fd, elem
}

// expected says what a field's JSON must be.
func expected(fd protoreflect.FieldDescriptor, elem bool) string {
	switch {
	case fd.IsList() && !elem:
		return "a list of " + plural(expected(fd, true))
	case fd.IsMap() && !elem:
		return "an object of " + plural(expected(fd.MapValue(), false))
	case fd.IsMap():
		fd = fd.MapValue()
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.EnumKind:
		var names []string
		values := fd.Enum().Values()
		for i := range values.Len() {
			names = append(names, strconv.Quote(string(values.Get(i).Name())))
		}
		return "one of " + strings.Join(names, ", ")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return `an RFC 3339 time such as "2026-01-02T15:04:05Z"`
		case "google.protobuf.Duration":
			return `a duration in seconds such as "1.5s"`
		}
		return "an object"
	}
	return "an integer"
}

func plural(what string) string {
	switch {
	case what == "true or false":
		return "true or false values"
	case strings.HasPrefix(what, "one of "):
		return "values " + what
	}
	return strings.TrimPrefix(strings.TrimPrefix(what, "an "), "a ") + "s"
}

// queryParser is grpc-gateway's, parameter by parameter, so an error names
// its parameter and says what it must be instead of quoting strconv.
type queryParser struct{ runtime.DefaultQueryParser }

func (p queryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if err := p.DefaultQueryParser.Parse(msg, url.Values{key: values[key]}, filter); err != nil {
			if len(values[key]) > 1 {
				return badRequest(key, "given more than once")
			}
			var path jsonPath
			for part := range strings.SplitSeq(key, ".") {
				path = append(path, pathElem{key: part})
			}
			if fd, elem := resolve(msg.ProtoReflect().Descriptor(), path); fd != nil && fieldPath.MatchString(key) {
				return badRequest(key, "must be "+expected(fd, elem || fd.IsList()))
			}
			return badRequest("query", "not valid for this call")
		}
	}
	return nil
}
