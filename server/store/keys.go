package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// Every Redis key name consentd uses is built in this file, so the layout can
// be read (and changed) in one place:
//
//	<prefix>:{p<partition>}:s:<id>             state hash of one subject
//	<prefix>:{p<partition>}:h:<id>             history list of one subject
//	<prefix>:{p<partition>}:i:<id>:<key hash>  idempotency record of one write
//	<prefix>:{p<partition>}:feed               change feed stream of a partition
//
// <id> is a keyed hash (HMAC-SHA256 with the operator's key, first 16 bytes,
// base64url) of the subject id: raw subject ids never appear in key names, so
// a key listing or a slow log reveals no one. The hash tag {p<partition>}
// puts a subject's keys and its partition's stream in one cluster slot, which
// lets one script touch all of them on Redis Cluster too.

// subjectKeys are the key names of one subject.
type subjectKeys struct {
	id      string // base64url of the truncated HMAC
	base    string // <prefix>:{p<partition>}
	state   string
	history string
	feed    string
}

func (s *Store) keysFor(subjectID string) subjectKeys {
	mac := hmac.New(sha256.New, s.opts.HMACKey)
	mac.Write([]byte(subjectID))
	sum := mac.Sum(nil)
	id := base64.RawURLEncoding.EncodeToString(sum[:16])
	partition := int(binary.BigEndian.Uint16(sum[:2])) % s.opts.Partitions
	base := s.partitionBase(partition)
	return subjectKeys{
		id:      id,
		base:    base,
		state:   base + ":s:" + id,
		history: base + ":h:" + id,
		feed:    base + ":feed",
	}
}

// idempotency is the key of one idempotency record. The caller's key is
// hashed so that its length and characters do not matter.
func (k subjectKeys) idempotency(idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return k.base + ":i:" + k.id + ":" + hex.EncodeToString(sum[:16])
}

// feedKey is the change feed stream of one partition (0 <= partition <
// Options.Partitions), for the feed consumers.
func (s *Store) feedKey(partition int) string {
	return s.partitionBase(partition) + ":feed"
}

func (s *Store) partitionBase(partition int) string {
	return s.opts.Prefix + ":{p" + strconv.Itoa(partition) + "}"
}
