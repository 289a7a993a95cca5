package api

import (
	"fmt"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
)

// errMinRevision says the store has not reached a revision the caller has
// already seen. It becomes FailedPrecondition (HTTP 412).
type minRevisionError struct {
	field         string
	want, current int64
}

func (e *minRevisionError) Error() string {
	return fmt.Sprintf("%s: %d is newer than the subject's stored revision %d", e.field, e.want, e.current)
}

func validateMinRevision(field string, v int64) error {
	if v < 0 {
		return &domain.FieldError{Field: field, Reason: fmt.Sprintf("must be >= 0, got %d", v)}
	}
	return nil
}

func checkMinRevision(field string, want, current int64) error {
	if want > current {
		return &minRevisionError{field: field, want: want, current: current}
	}
	return nil
}

// preconditionError: the request is well formed but the subject is not in
// the state it needs (e.g. a guardian confirming a subject that is not a
// minor). It becomes FailedPrecondition naming the field.
type preconditionError struct{ field, reason string }

func (e *preconditionError) Error() string { return e.field + ": " + e.reason }

// validateWrite checks the fields UpdateConsent and WithdrawConsent share.
func validateWrite(source consentv1.Source, region string, expected *int64, idempotencyKey string) error {
	if _, known := consentv1.Source_name[int32(source)]; !known {
		return &domain.FieldError{Field: "source", Reason: fmt.Sprintf("unknown source %d", source)}
	}
	if err := domain.ValidateRegionCode("region", region); err != nil {
		return err
	}
	if expected != nil && *expected < 0 {
		return &domain.FieldError{Field: "expected_revision", Reason: fmt.Sprintf("must be >= 0, got %d", *expected)}
	}
	return validateIdempotencyKey(idempotencyKey)
}

func validateIdempotencyKey(key string) error {
	if len(key) > maxIdempotencyKeyChars {
		return &domain.FieldError{Field: "idempotency_key", Reason: fmt.Sprintf("at most %d characters, got %d", maxIdempotencyKeyChars, len(key))}
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return &domain.FieldError{Field: "idempotency_key", Reason: "only printable ASCII without spaces"}
		}
	}
	return nil
}

// firstError returns the first non-nil error, so a handler lists its checks
// in field order and reports the first failure.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
