package store_test

import (
	"testing"

	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store/storetest"
)

func TestFeedConformanceStandalone(t *testing.T) {
	storetest.RunFeed(t, redistest.Start(t).Client(t))
}
