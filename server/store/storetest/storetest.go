// Package storetest is the conformance suite of the store: the same tests
// run against a standalone Redis, a Redis Cluster and through Sentinel.
// Each subtest uses its own key prefix, so subtests run in parallel on one
// server.
package storetest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/keys"
)

// HMACKey is the key-name secret the suite's stores use.
var HMACKey = []byte("storetest-hmac-key-0123456789abcdef")

// Sealer seals the subject ids in the change feed of the suite's stores;
// tests open feed entries with it.
var Sealer = func() *keys.Sealer {
	s, err := keys.NewSealer([]keys.Key{{ID: "storetest", Secret: []byte("storetest-encryption-key-32bytes")}})
	if err != nil {
		panic(err) // a constant key of the right length: cannot happen
	}
	return s
}()

// t0 is the suite's clock: tests pass explicit times and assert on them.
var t0 = time.Unix(1_750_000_000, 0).UTC()

// Run runs every conformance test of the store but the change feed's
// (RunFeed) against client. The subtests run in parallel after Run returns,
// so close the client in t.Cleanup, not with defer.
func Run(t *testing.T, client redis.UniversalClient) {
	t.Run("a new subject reads revision 0 and no decisions", func(t *testing.T) { testNewSubjectReadsNothing(t, client) })
	t.Run("GetPurposes and GetMany agree with Get", func(t *testing.T) { testGetPurposesAndGetMany(t, client) })

	t.Run("a write stores every field of a decision", func(t *testing.T) { testWriteStoresEveryField(t, client) })
	t.Run("each decision records the revision of the write that stored it", func(t *testing.T) { testDecisionKeepsItsWriteRevision(t, client) })
	t.Run("decisions and confirmations stored before revisions were recorded still read, and stay as stored", func(t *testing.T) { testDecisionsStoredBeforeRevisions(t, client) })
	t.Run("a partial update changes only the purposes given", func(t *testing.T) { testPartialUpdate(t, client) })
	t.Run("every write raises the revision by one and returns it", func(t *testing.T) { testRevisionRisesByOne(t, client) })
	t.Run("expected revision: a match applies, a mismatch is a conflict and changes nothing", func(t *testing.T) { testExpectedRevision(t, client) })
	t.Run("the first GPC signal seen is kept", func(t *testing.T) { testFirstGPCSignalKept(t, client) })
	t.Run("the region is kept when a write gives none", func(t *testing.T) { testRegionKept(t, client) })
	t.Run("concurrent writers lose no update", func(t *testing.T) { testConcurrentWriters(t, client) })
	t.Run("bad input is refused and writes nothing", func(t *testing.T) { testBadInput(t, client) })

	t.Run("an idempotent retry applies once and returns the same result", func(t *testing.T) { testIdempotentRetry(t, client) })
	t.Run("the same idempotency key with a different request is refused and changes nothing", func(t *testing.T) { testIdempotencyMismatch(t, client) })

	t.Run("events come newest first with old and new values, and page by revision", func(t *testing.T) { testEventsNewestFirstInPages(t, client) })
	t.Run("the hash chain verifies and detects an edited or deleted event", func(t *testing.T) { testHashChain(t, client) })
	t.Run("History lists the whole history oldest first, with its chain's verdict", func(t *testing.T) { testHistory(t, client) })
	t.Run("an access event is chained into the history and leaves decisions and the feed alone", func(t *testing.T) { testAccessEvent(t, client) })
	t.Run("client facts are sealed in the history and opened when read", func(t *testing.T) { testClientFactsSealed(t, client) })

	t.Run("key names hide the subject id and share the subject's partition slot", func(t *testing.T) { testKeyNames(t, client) })
	t.Run("the change feed gets one entry per write", func(t *testing.T) { testFeedEntryPerWrite(t, client) })

	t.Run("a guardian's confirmation records the revision it saw, and clearing the mark clears it", func(t *testing.T) { testGuardianConfirmationRevision(t, client) })
	t.Run("restriction, minor status and guardian confirmation are stored and read everywhere", func(t *testing.T) { testStatuses(t, client) })

	t.Run("a linked visitor's reads and following writes go to its user", func(t *testing.T) { testLinkedVisitor(t, client) })

	t.Run("erasing a subject leaves nothing readable about it, under every known HMAC key", func(t *testing.T) { testErase(t, client) })
	t.Run("erasing twice, or erasing a subject never stored, is fine and adds nothing", func(t *testing.T) { testEraseTwice(t, client) })
	t.Run("erasing a user names the visitors linked to it; erasing a visitor names no user", func(t *testing.T) { testEraseNamesLinkedVisitors(t, client) })

	t.Run("retention: visitors' records and histories expire by Redis TTL, renewed by each write", func(t *testing.T) { testRetentionTTL(t, client) })
	t.Run("retention: an inactive visitor's record is gone when its time is up", func(t *testing.T) { testRetentionInactiveVisitor(t, client) })
	t.Run("an expired history restarts its chain and still verifies", func(t *testing.T) { testExpiredHistoryRestartsChain(t, client) })
	t.Run("expired idempotency records are pruned from a subject's idempotency hash", func(t *testing.T) { testIdempotencyRecordsPruned(t, client) })

	t.Run("stats: each decision counts once as granted, denied or withdrawn, and each write once under its method", func(t *testing.T) { testStatsCountOutcomesAndMethods(t, client) })
	t.Run("stats: an idempotent replay counts once, a stale write nothing", func(t *testing.T) { testStatsReplayAndStaleCountOnce(t, client) })
	t.Run("stats: links, statuses, access events and erasure count nothing", func(t *testing.T) { testStatsOnlyDecisionsCount(t, client) })
	t.Run("stats: the day's hash is in the subject's slot, expires within the retention and holds no subject id", func(t *testing.T) { testStatsKeysExpireAndHoldNoSubject(t, client) })
	t.Run("stats: every day of a range is read, banner events included, and bad ranges are refused", func(t *testing.T) { testStatsDaysAndBannerEvents(t, client) })
	t.Run("stats: a count that cannot be raised fails the write, which writes nothing", func(t *testing.T) { testStatsFailedIncrementFailsTheWholeWrite(t, client) })

	t.Run("HMAC key rotation: data stays readable and moves to the active key on the next write", func(t *testing.T) { testRotation(t, client) })
	t.Run("HMAC key rotation under traffic loses no write and keeps each subject in one place", func(t *testing.T) { testRotationUnderTraffic(t, client) })
}

// RunFeed runs the change feed's conformance tests against client, in
// parallel subtests each on its own key prefix.
func RunFeed(t *testing.T, client redis.UniversalClient) {
	t.Run("feed: a cursor resumes without a miss or a duplicate", func(t *testing.T) { testFeedCursorResumes(t, client) })
	t.Run("feed: a partition's backlog comes in order, in batches of at most the batch size", func(t *testing.T) { testFeedBacklogInOrder(t, client) })
	t.Run("feed: without a cursor a watch starts now, or at the oldest with from_oldest", func(t *testing.T) { testFeedStartsNowOrAtTheOldest(t, client) })
	t.Run("feed: a change carries the subject, revision, event and opt-out", func(t *testing.T) { testFeedChangeFields(t, client) })
	t.Run("feed: the purpose filter keeps changes of those purposes and those that concern every purpose", func(t *testing.T) { testFeedPurposeFilter(t, client) })

	t.Run("feed: bad input names its field", func(t *testing.T) { testFeedBadInput(t, client) })

	t.Run("feed: a consumer that disconnects misses nothing, and sees nothing twice once it acknowledged", func(t *testing.T) { testFeedConsumerResumes(t, client) })
	t.Run("feed: lag counts unacknowledged opt-outs and when the oldest happened", func(t *testing.T) { testFeedLag(t, client) })
	t.Run("feed: entries retention trimmed before a consumer acknowledged them are counted", func(t *testing.T) { testFeedTrimmedCounted(t, client) })
	t.Run("feed: pending entries an erasure deleted are skipped and acknowledged", func(t *testing.T) { testFeedErasedPendingSkipped(t, client) })
	t.Run("feed: deleting a consumer drops its groups and name", func(t *testing.T) { testFeedDeleteConsumer(t, client) })
}
