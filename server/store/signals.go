package store

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/consentd/consentd/server/domain"
)

// eventSignals is a signals event's IAB strings in the stored event ("sig"):
// part of the event's hashed content, so of the hash chain. The strings are
// the choices already recorded in plain by the update events, encoded for ad
// tech: not sealed, like "n".
type eventSignals struct {
	Region string `json:"r"`            // the region code they were made for
	For    int64  `json:"f"`            // the revision whose decisions they encode
	TC     string `json:"tc,omitempty"` // TC string
	GPP    string `json:"gp,omitempty"` // GPP string
}

func signalsOf(w Write) *eventSignals {
	if w.Signals == nil {
		return nil
	}
	return &eventSignals{Region: w.Signals.Region, For: w.Signals.Revision, TC: w.Signals.TCString, GPP: w.Signals.GPPString}
}

// encodeSignals is the _sig field of the state hash (see statecodec.go)
// for signals written at revision rev.
func encodeSignals(sig *domain.AdSignals, rev string, now time.Time) string {
	return strconv.FormatInt(sig.Revision, 10) + "|" + rev + "|" + strconv.FormatInt(now.UnixMilli(), 10) + "|" +
		sig.Region + "|" + sig.TCString + "|" + sig.GPPString
}

func decodeSignals(v string) (*domain.AdSignals, error) {
	parts := strings.Split(v, "|")
	if len(parts) != 6 {
		return nil, errCorrupt
	}
	forRev, ok1 := parseRevision(parts[0])
	eventRev, ok2 := parseRevision(parts[1])
	at, err := strconv.ParseInt(parts[2], 10, 64)
	if !ok1 || !ok2 || err != nil {
		return nil, errCorrupt
	}
	return &domain.AdSignals{Region: parts[3], Revision: forRev, EventRevision: eventRev,
		At: time.UnixMilli(at).UTC(), TCString: parts[4], GPPString: parts[5]}, nil
}

// checkSignals refuses signals the state field could not hold.
func checkSignals(sig *domain.AdSignals) error {
	for _, s := range []string{sig.Region, sig.TCString, sig.GPPString} {
		if strings.Contains(s, "|") {
			return errors.New("store: IAB signals must not contain '|'")
		}
	}
	if sig.Revision < 1 {
		return errors.New("store: IAB signals need the revision they were made for")
	}
	return nil
}
