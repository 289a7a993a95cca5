package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// streamID is a Redis stream entry id, <ms>-<seq>.
type streamID struct{ ms, seq uint64 }

// parseStreamID accepts only the canonical form Redis writes.
func parseStreamID(s string) (streamID, bool) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	id := streamID{ms, seq}
	if err1 != nil || err2 != nil || id.String() != s {
		return streamID{}, false
	}
	return id, true
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id streamID) compare(o streamID) int {
	return cmp.Or(cmp.Compare(id.ms, o.ms), cmp.Compare(id.seq, o.seq))
}

// after is an XRANGE start just past id ("-" from the beginning).
func after(id streamID) string {
	if id == (streamID{}) {
		return "-"
	}
	return "(" + id.String()
}

// A cursor is the last entry delivered in every partition:
//
//	base64url (no padding) of
//	  version byte 1
//	  uvarint number of partitions
//	  uvarint base: the largest millisecond time among the entries
//	  per partition: uvarint 0 for "none yet", else base - ms + 1; uvarint seq
//	  4 bytes: SHA-256 of the key prefix and everything above, cut
//
// Times relative to the newest keep it short (~4 bytes per active
// partition: ~300 characters with 64 partitions). The check bytes refuse a
// damaged cursor and one from another installation's feed (another prefix).
const cursorVersion = 1

func (s *Store) encodeCursor(pos []streamID) string {
	var base uint64
	for _, id := range pos {
		base = max(base, id.ms)
	}
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, uint64(len(pos)))
	b = binary.AppendUvarint(b, base)
	for _, id := range pos {
		if id == (streamID{}) {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = binary.AppendUvarint(b, base-id.ms+1)
		}
		b = binary.AppendUvarint(b, id.seq)
	}
	b = append(b, s.cursorCheck(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Store) cursorCheck(body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(s.opts.Prefix))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)[:4]
}

func (s *Store) decodeCursor(cursor string) ([]streamID, error) {
	bad := func(why string) error {
		return &InvalidCursorError{Reason: why}
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < 5 {
		return nil, bad("malformed")
	}
	body, check := raw[:len(raw)-4], raw[len(raw)-4:]
	if !bytes.Equal(check, s.cursorCheck(body)) {
		return nil, bad("not a cursor of this change feed")
	}
	rd := bytes.NewReader(body)
	if v, _ := rd.ReadByte(); v != cursorVersion {
		return nil, bad("unknown cursor version")
	}
	n, err1 := binary.ReadUvarint(rd)
	base, err2 := binary.ReadUvarint(rd)
	if err1 != nil || err2 != nil {
		return nil, bad("malformed")
	}
	if n != uint64(s.opts.Partitions) {
		return nil, bad(fmt.Sprintf("made for %d partitions, the feed has %d", n, s.opts.Partitions))
	}
	pos := make([]streamID, n)
	for i := range pos {
		d, err1 := binary.ReadUvarint(rd)
		seq, err2 := binary.ReadUvarint(rd)
		switch {
		case err1 != nil || err2 != nil, d > base+1, d == 0 && seq != 0:
			return nil, bad("malformed")
		case d > 0:
			pos[i] = streamID{base - (d - 1), seq}
		}
	}
	if rd.Len() != 0 {
		return nil, bad("malformed")
	}
	return pos, nil
}

// parseChangeID splits "<partition>-<ms>-<seq>".
func (s *Store) parseChangeID(id string) (int, string, bool) {
	p, rest, ok := strings.Cut(id, "-")
	if !ok {
		return 0, "", false
	}
	partition, err := strconv.Atoi(p)
	if err != nil || partition < 0 || partition >= s.opts.Partitions || strconv.Itoa(partition) != p {
		return 0, "", false
	}
	if _, ok := parseStreamID(rest); !ok {
		return 0, "", false
	}
	return partition, rest, true
}
