package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strconv"
)

// Every Redis key name consentd uses is built in this file, so the layout can
// be read (and changed) in one place:
//
//	<prefix>:{p<partition>}:s:<id>             state hash of one subject
//	<prefix>:{p<partition>}:h:<id>             history list of one subject
//	<prefix>:{p<partition>}:i:<id>             idempotency records of one subject (hash)
//	<prefix>:{p<partition>}:feed               change feed stream of a partition
//	<prefix>:{p<partition>}:tomb               anonymous tombstones of erased subjects (list)
//	<prefix>:{p<partition>}:trimmed            per feed consumer, entries trimmed before it acknowledged them (hash)
//	<prefix>:{p<partition>}:stats:<YYYYMMDD>   a partition's consent statistics of one UTC day (hash; no subject ids; see stats.go)
//	<prefix>:consumers                         names of the feed consumers (set; no hash tag: read alone)
//
// <id> is a keyed hash (HMAC-SHA256 with the operator's key, first 16 bytes,
// base64url) of the subject id: raw subject ids never appear in key names, so
// a key listing or a slow log reveals no one.
//
// <partition> is NOT keyed: it is the big-endian uint16 of the first 2 bytes
// of SHA-256(subject id), mod Options.Partitions. So the only thing anyone can
// derive from a subject id without the HMAC key is its partition number (one
// of 64 by default: 6 bits, shared by 1/64 of all subjects), never its key
// names. In exchange the partition does not depend on the HMAC key: a subject
// has the same hash tag under every HMAC key, so during a key rotation (see
// Store) its names under the old and the new key share one cluster slot, and
// one script can move its data from one to the other.
//
// The hash tag {p<partition>} puts a subject's keys and its partition's stream
// in one cluster slot, which lets one script touch all of them on Redis
// Cluster too.

// subjectKeys are the key names of one subject under one HMAC key.
type subjectKeys struct {
	id          string // base64url of the truncated HMAC
	base        string // <prefix>:{p<partition>}
	state       string
	history     string
	idempotency string // hash: one field per idempotency key (idempotencyField)
	feed        string
}

// knownKeysFor names the subject's keys under every known HMAC key, the
// active key first, then Options.PreviousHMACKeys in order. All share one
// slot. Between writes a subject's data lives under exactly one of them.
func (s *Store) knownKeysFor(subjectID string) []subjectKeys {
	base := s.partitionBase(s.partitionOf(subjectID))
	names := make([]subjectKeys, 0, 1+len(s.opts.PreviousHMACKeys))
	names = append(names, s.keysUnder(s.opts.HMACKey, base, subjectID))
	for _, key := range s.opts.PreviousHMACKeys {
		names = append(names, s.keysUnder(key, base, subjectID))
	}
	return names
}

// stateKey names the subject's state hash under the active HMAC key: all a
// check reads, so the check path builds no other name.
func (s *Store) stateKey(subjectID string) string {
	return s.partitionBase(s.partitionOf(subjectID)) + ":s:" + s.keyedID(s.opts.HMACKey, subjectID)
}

func (s *Store) keysUnder(hmacKey []byte, base, subjectID string) subjectKeys {
	id := s.keyedID(hmacKey, subjectID)
	return subjectKeys{
		id:          id,
		base:        base,
		state:       base + ":s:" + id,
		history:     base + ":h:" + id,
		idempotency: base + ":i:" + id,
		feed:        base + ":feed",
	}
}

// keyedID is the <id> of a subject's key names under hmacKey. The active
// key's HMACs come from a pool: setting one up hashes the key twice, which
// cost more than hashing the subject id on the check path.
func (s *Store) keyedID(hmacKey []byte, subjectID string) string {
	var mac hash.Hash
	if bytes.Equal(hmacKey, s.opts.HMACKey) {
		mac = s.activeMACs.Get().(hash.Hash)
		defer s.activeMACs.Put(mac)
		mac.Reset()
	} else {
		mac = hmac.New(sha256.New, hmacKey)
	}
	mac.Write([]byte(subjectID))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0])[:16])
}

// partitionOf is the subject's partition: an unkeyed hash, see above.
func (s *Store) partitionOf(subjectID string) int {
	sum := sha256.Sum256([]byte(subjectID))
	return int(binary.BigEndian.Uint16(sum[:2])) % s.opts.Partitions
}

// idempotencyField names one idempotency record in the subject's
// idempotency hash. The caller's key is hashed so that its length and
// characters do not matter.
func idempotencyField(idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return hex.EncodeToString(sum[:16])
}

// tombstones is the list of anonymous tombstones of a partition's erased
// subjects.
func (k subjectKeys) tombstones() string { return k.base + ":tomb" }

// feedKey is the change feed stream of one partition (0 <= partition <
// Options.Partitions), for the feed consumers.
func (s *Store) feedKey(partition int) string {
	return s.partitionBase(partition) + ":feed"
}

func (s *Store) partitionBase(partition int) string {
	return s.opts.Prefix + ":{p" + strconv.Itoa(partition) + "}"
}

// consumersKey is the set of the change feed's consumer names.
func (s *Store) consumersKey() string { return s.opts.Prefix + ":consumers" }

// trimmedKey counts, per consumer, a partition's feed entries trimmed before
// the consumer acknowledged them.
func (s *Store) trimmedKey(partition int) string { return s.partitionBase(partition) + ":trimmed" }
