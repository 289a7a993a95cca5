package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Errors callers act on. Error texts never contain subject ids.
var (
	// ErrConflict: the write's expected revision is not the stored one. The
	// error is a *ConflictError carrying both revisions.
	ErrConflict = errors.New("store: revision conflict")
	// ErrIdempotencyMismatch: the idempotency key was already used for a
	// different request on this subject.
	ErrIdempotencyMismatch = errors.New("store: idempotency key reused for a different request")
	// ErrUnavailable: Redis is unreachable, timed out, loading or (cluster)
	// down. Retrying later may succeed; a write retried with the same
	// idempotency key applies at most once.
	ErrUnavailable = errors.New("store: Redis unavailable")
	// ErrStorageFull: Redis refused a write for memory (maxmemory reached
	// under maxmemory-policy noeviction, deploy/'s setting). It is also
	// ErrUnavailable: nothing was written (Redis refuses a script before its
	// first write, so a write is never half applied), reads still work, and
	// the same write succeeds once an operator has made room.
	ErrStorageFull = errors.New("store: Redis is full (maxmemory)")
	// ErrChainBroken: a subject's history does not verify (VerifyChain).
	ErrChainBroken = errors.New("store: history hash chain broken")
)

// ConflictError is returned when Write.ExpectedRevision does not match.
type ConflictError struct {
	Expected, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: revision conflict: expected %d, current %d", e.Expected, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// wrapErr adds the operation to a Redis error and marks the ones that mean
// "Redis cannot serve now" as ErrUnavailable. The original error stays in the
// chain (errors.Is(err, context.DeadlineExceeded) still holds).
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if redis.IsOOMError(err) {
		return fmt.Errorf("store: %s: %w: %w: %w", op, ErrUnavailable, ErrStorageFull, err)
	}
	if unavailable(err) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up: not Redis' fault
	}
	var netErr net.Error // dial refused, i/o timeout, connection reset
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), // server went away mid-reply
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return true
	case redis.IsLoadingError(err), // restarting, dataset not loaded yet
		redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), // cluster resharding a slot
		redis.IsMasterDownError(err),
		redis.IsReadOnlyError(err), // failover in progress: connected to a replica
		isRedirect(err),            // a slot moved (resharding, or a master back as a replica): the client follows no redirects
		redis.IsMaxClientsError(err),
		redis.HasErrorPrefix(err, "BUSY"): // a script runs too long
		return true
	}
	return false
}

// isRedirect reports a MOVED or ASK reply. The cluster client is set to
// follow none (a redirect after a lost reply could re-send a write), so the
// call fails as unavailable while its slot map reloads.
func isRedirect(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask
}

// Bad input to the change feed. The store names what is wrong in its own
// terms; the API maps each type to the request field it came from (api's
// toStatus), so these errors hold no API field names. Reason says what is
// wrong for a person to read.

// BatchSizeError: FeedQuery.BatchSize is outside 0 to MaxFeedBatch.
type BatchSizeError struct {
	Size   int
	Reason string
}

func (e *BatchSizeError) Error() string { return "store: feed batch size: " + e.Reason }

// FeedPurposesError: FeedQuery.Purposes is too long (Index -1) or its
// element Index is not a purpose id.
type FeedPurposesError struct {
	Index  int
	Reason string
}

func (e *FeedPurposesError) Error() string {
	if e.Index < 0 {
		return "store: feed purposes: " + e.Reason
	}
	return fmt.Sprintf("store: feed purpose %d: %s", e.Index, e.Reason)
}

// ConsumerNameError: a feed consumer's name is not 1-64 of a-z 0-9 . _ -.
type ConsumerNameError struct {
	Reason string
}

func (e *ConsumerNameError) Error() string { return "store: feed consumer name: " + e.Reason }

// InvalidCursorError: a feed cursor that this feed did not hand out (damaged,
// of another installation, or for another number of partitions).
type InvalidCursorError struct {
	Reason string
}

func (e *InvalidCursorError) Error() string { return "store: feed cursor: " + e.Reason }

// AckIDsError: the change ids to acknowledge are too few or too many (Index
// -1), or the one at Index is not a change id of this feed.
type AckIDsError struct {
	Index  int
	Reason string
}

func (e *AckIDsError) Error() string {
	if e.Index < 0 {
		return "store: change ids: " + e.Reason
	}
	return fmt.Sprintf("store: change id %d: %s", e.Index, e.Reason)
}
