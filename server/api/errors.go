package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/middleware"
	"github.com/consentd/consentd/server/store"
)

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
