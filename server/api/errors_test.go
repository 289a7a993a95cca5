package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// toStatusCases are the error kinds handlers meet and the status each
// becomes: code and message, and the field violation or ErrorInfo reason
// the status carries ("" for none).
var toStatusCases = []struct {
	name      string
	err       error
	code      codes.Code
	msg       string
	field     string // the one field violation's field
	fieldWhy  string // and its description
	infoWhy   string // the one ErrorInfo's reason
	infoScope string // and its domain
}{
	{
		name: "bad input names its field",
		err:  &domain.FieldError{Field: "subject_id", Reason: "required"},
		code: codes.InvalidArgument, msg: "subject_id: required",
		field: "subject_id", fieldWhy: "required",
	},
	{
		name: "a min_revision the store has not reached",
		err:  &minRevisionError{field: "min_revision", want: 9, current: 7},
		code: codes.FailedPrecondition, msg: "min_revision: 9 is newer than the subject's stored revision 7",
		field: "min_revision", fieldWhy: "the store has revision 7",
	},
	{
		name: "a subject not in the state the call needs",
		err:  &preconditionError{field: "subject_id", reason: "not a minor"},
		code: codes.FailedPrecondition, msg: "subject_id: not a minor",
		field: "subject_id", fieldWhy: "not a minor",
	},
	{
		name: "a revision conflict with both revisions",
		err:  fmt.Errorf("store: write: %w", &store.ConflictError{Expected: 3, Current: 5}),
		code: codes.Aborted, msg: "expected_revision: 3 does not match the subject's revision 5",
		field: "expected_revision", fieldWhy: "expected_revision: 3 does not match the subject's revision 5",
	},
	{
		name: "a revision conflict without them",
		err:  fmt.Errorf("store: write: %w", store.ErrConflict),
		code: codes.Aborted, msg: "expected_revision: does not match the subject's revision",
		field: "expected_revision", fieldWhy: "revision conflict",
	},
	{
		name: "an idempotency key reused for another request",
		err:  store.ErrIdempotencyMismatch,
		code: codes.InvalidArgument, msg: "idempotency_key: already used for a different request",
		field: "idempotency_key", fieldWhy: "idempotency_key: already used for a different request",
	},
	{
		name: "an unknown feed consumer",
		err:  store.ErrConsumerNotFound,
		code: codes.NotFound, msg: "consumer: no such feed consumer; create it with CreateFeedConsumer",
		field: "consumer", fieldWhy: "not found",
	},
	{
		name: "Redis full: unavailable, told apart by its reason",
		err:  fmt.Errorf("store: write: %w: %w: %w", store.ErrUnavailable, store.ErrStorageFull, errors.New("OOM command not allowed")),
		code: codes.Unavailable, msg: "the consent store's storage is full; the change was not saved; retry later",
		infoWhy: "STORAGE_FULL", infoScope: ErrorDomain,
	},
	{
		name: "Redis unavailable",
		err:  errUnavailable,
		code: codes.Unavailable, msg: "the consent store is unavailable; retry later",
	},
	{
		name: "the caller's deadline",
		err:  fmt.Errorf("store: get: %w", context.DeadlineExceeded),
		code: codes.DeadlineExceeded, msg: "deadline exceeded",
	},
	{
		name: "the caller went away",
		err:  fmt.Errorf("store: get: %w", context.Canceled),
		code: codes.Canceled, msg: "request canceled",
	},
	{
		name: "anything else is internal, without its cause",
		err:  errors.New("store: corrupt record for subject alice@example.com"),
		code: codes.Internal, msg: "internal error",
	},
}

func TestToStatus(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	for _, tc := range toStatusCases {
		t.Run(tc.name, func(t *testing.T) {
			st := wantStatus(t, s.toStatus(context.Background(), tc.err), tc.code, tc.msg)
			v := violations(st)
			switch {
			case tc.field == "" && len(v) != 0:
				t.Errorf("field violations %v, want none", v)
			case tc.field != "" && (len(v) != 1 || v[0].GetField() != tc.field || v[0].GetDescription() != tc.fieldWhy):
				t.Errorf("field violations %v, want one: %s %q", v, tc.field, tc.fieldWhy)
			}
			infos := errorInfos(st)
			switch {
			case tc.infoWhy == "" && len(infos) != 0:
				t.Errorf("ErrorInfo %v, want none", infos)
			case tc.infoWhy != "" && (len(infos) != 1 || infos[0].GetReason() != tc.infoWhy || infos[0].GetDomain() != tc.infoScope):
				t.Errorf("ErrorInfo %v, want reason %s in domain %s", infos, tc.infoWhy, tc.infoScope)
			}
		})
	}
}
