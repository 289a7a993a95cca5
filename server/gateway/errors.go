package gateway

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// publicRouting: on the public listener a path the API has with another
	// method is 404 too, so that no path it does not serve shows (a 405
	// would say the path exists).
	publicRouting bool
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
	if probing(r) {
		return // publicPreflight's probe of a path the API does not have: it answers
	}
	e.writeRoutingError(w, r, httpStatus)
}

func (e *errorWriter) writeRoutingError(w http.ResponseWriter, r *http.Request, httpStatus int) {
	if e.publicRouting && httpStatus == http.StatusMethodNotAllowed {
		w.Header().Del("Allow")
		httpStatus = http.StatusNotFound
	}
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
