package gateway

// Reading a request's body and query strictly, and saying what is wrong with
// them in the API's terms: the field's path as the caller wrote it and what
// it must be, never the parser's words (errors.go answers with them).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

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
