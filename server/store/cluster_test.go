package store_test

import (
	"testing"

	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store/storetest"
)

// The conformance suites on a Redis Cluster of three masters with a replica
// each: every script must find all its keys in one slot, and every
// multi-partition read (the change feed, consumer lag) must work across
// masters.

func TestConformanceCluster(t *testing.T) {
	storetest.Run(t, redistest.StartCluster(t).Client(t))
}

func TestFeedConformanceCluster(t *testing.T) {
	storetest.RunFeed(t, redistest.StartCluster(t).Client(t))
}

// Through Sentinel the store talks to one master, as on a standalone Redis;
// this shows the failover client serves every part of it.
func TestConformanceSentinel(t *testing.T) {
	storetest.Run(t, redistest.StartSentinel(t).Client(t))
}

func TestFeedConformanceSentinel(t *testing.T) {
	storetest.RunFeed(t, redistest.StartSentinel(t).Client(t))
}
