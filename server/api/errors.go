package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/middleware"
	"github.com/consentd/consentd/server/store"
)

// When the store cannot serve (store.ErrUnavailable: Redis down, too slow,
// loading), what a call answers depends on its kind, and only on that:
//
//	kind of call                             answer                                   helper
//	checks: CheckConsent, BatchCheckConsent  an answer, failing closed: the necessary  failClosed
//	                                         purpose allowed, every other denied with
//	                                         REASON_STORE_UNAVAILABLE, revision 0
//	every other call: reads (GetConsent,     UNAVAILABLE "the consent store is         toStatus
//	FilterSubjects, history, export),        unavailable; retry later"; a write
//	writes, rights, links, the feed          refused for memory (store.ErrStorageFull)
//	                                         UNAVAILABLE with ErrorInfo STORAGE_FULL
//
// Checks answer because their callers are about to act (send an email, load
// a tracker) and a denial is always lawful to act on. FilterSubjects is not
// a check here: failing closed would return a shortened send list that reads
// as opt-outs. Both helpers log the store's error at warning level.

// storeUnavailable reports whether err means the store cannot serve now.
func storeUnavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }

// failClosed is what checks answer when the store is unavailable (see the
// table above): one result per check, in order. Revision 0 tells the caller
// no record was read.
func (s *Server) failClosed(ctx context.Context, err error, policy *domain.Policy, checks []*consentv1.ConsentCheck) []*consentv1.ConsentCheckResult {
	s.logger.WarnContext(ctx, "store unavailable: check answered fail-closed", "request_id", middleware.RequestID(ctx), "error", err)
	results := make([]*consentv1.ConsentCheckResult, len(checks))
	for i, c := range checks {
		answer := domain.FailClosed(policy, c.GetPurpose())
		results[i] = &consentv1.ConsentCheckResult{SubjectId: c.GetSubjectId(), Purpose: c.GetPurpose(),
			Allowed: answer.Allowed, Reason: reasonToProto(answer.Reason)}
	}
	return results
}

// toStatus is the one place where errors become gRPC statuses. Bad input
// names its field; store failures say what the caller can do; anything
// unexpected is logged with the request id and answered "internal error",
// never with its cause.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if fe := storeInputField(err); fe != nil {
		err = fe
	}
	var (
		fieldErr    *domain.FieldError
		minRevErr   *minRevisionError
		conflictErr *store.ConflictError
		movedErr    *revisionMovedError
		precondErr  *preconditionError
	)
	switch {
	case errors.As(err, &fieldErr):
		return withField(codes.InvalidArgument, fieldErr.Error(), fieldErr.Field, fieldErr.Reason)
	case errors.As(err, &minRevErr):
		return withField(codes.FailedPrecondition, minRevErr.Error(), minRevErr.field,
			fmt.Sprintf("the store has revision %d", minRevErr.current))
	case errors.As(err, &precondErr):
		return withField(codes.FailedPrecondition, precondErr.Error(), precondErr.field, precondErr.reason)
	case errors.As(err, &movedErr):
		return withField(codes.Aborted, movedErr.Error(), "revision", "the subject was written since")
	case errors.As(err, &conflictErr):
		msg := fmt.Sprintf("expected_revision: %d does not match the subject's revision %d", conflictErr.Expected, conflictErr.Current)
		return withField(codes.Aborted, msg, "expected_revision", msg)
	case errors.Is(err, store.ErrConflict):
		return withField(codes.Aborted, "expected_revision: does not match the subject's revision", "expected_revision", "revision conflict")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		msg := "idempotency_key: already used for a different request"
		return withField(codes.InvalidArgument, msg, "idempotency_key", msg)
	case errors.Is(err, store.ErrConsumerNotFound):
		return withField(codes.NotFound, "consumer: no such feed consumer; create it with CreateFeedConsumer", "consumer", "not found")
	case errors.Is(err, store.ErrStorageFull):
		// Unavailable, not Internal: nothing is wrong with the call, and the
		// same call succeeds once an operator has made room (README,
		// "Redis is full"). The reason lets clients tell it from an outage.
		s.logger.WarnContext(ctx, "store full: Redis refuses writes (maxmemory)", "request_id", middleware.RequestID(ctx), "error", err)
		return withInfo(codes.Unavailable, "the consent store's storage is full; the change was not saved; retry later", "STORAGE_FULL")
	case errors.Is(err, store.ErrUnavailable):
		s.logger.WarnContext(ctx, "store unavailable", "request_id", middleware.RequestID(ctx), "error", err)
		return status.Error(codes.Unavailable, "the consent store is unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	}
	s.logger.ErrorContext(ctx, "internal error", "request_id", middleware.RequestID(ctx), "error", err)
	return status.Error(codes.Internal, "internal error")
}

// storeInputField names the request field that a store input error came
// from; nil for any other error. The store's errors know nothing of the API's
// field names: this is the one place that does.
func storeInputField(err error) *domain.FieldError {
	var (
		batchErr    *store.BatchSizeError
		purposesErr *store.FeedPurposesError
		consumerErr *store.ConsumerNameError
		cursorErr   *store.InvalidCursorError
		ackErr      *store.AckIDsError
	)
	indexed := func(field string, index int) string {
		if index < 0 {
			return field
		}
		return fmt.Sprintf("%s[%d]", field, index)
	}
	switch {
	case errors.As(err, &batchErr):
		return &domain.FieldError{Field: "batch_size", Reason: batchErr.Reason}
	case errors.As(err, &purposesErr):
		return &domain.FieldError{Field: indexed("purposes", purposesErr.Index), Reason: purposesErr.Reason}
	case errors.As(err, &consumerErr):
		return &domain.FieldError{Field: "consumer", Reason: consumerErr.Reason}
	case errors.As(err, &cursorErr):
		return &domain.FieldError{Field: "cursor", Reason: cursorErr.Reason + ": pass a cursor from a response of this feed, or none"}
	case errors.As(err, &ackErr):
		return &domain.FieldError{Field: indexed("change_ids", ackErr.Index), Reason: ackErr.Reason}
	}
	return nil
}

// ErrorDomain is the domain of the ErrorInfo details consentd sends.
const ErrorDomain = "consentd"

func withInfo(code codes.Code, msg, reason string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

func withField(code codes.Code, msg, field, reason string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}},
	})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}
