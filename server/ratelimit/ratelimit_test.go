package ratelimit

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

type inProcess struct{}

func (inProcess) Network() string { return "bufconn" }
func (inProcess) String() string  { return "bufconn" }

func TestClientIP(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 51000}
	for _, tc := range []struct {
		name      string
		addr      net.Addr
		forwarded []string
		hops      int
		want      string
	}{
		{"a gRPC caller is its peer address", tcp, nil, 0, "192.0.2.7"},
		{"a gRPC caller's own X-Forwarded-For is ignored", tcp, []string{"203.0.113.9"}, 1, "192.0.2.7"},
		{"a REST caller is the gateway's last entry", inProcess{}, []string{"198.51.100.1, 192.0.2.50"}, 0, "192.0.2.50"},
		{"behind one trusted proxy, the entry before it", inProcess{}, []string{"198.51.100.1, 192.0.2.50"}, 1, "198.51.100.1"},
		{"more hops than entries stops at the first", inProcess{}, []string{"192.0.2.50"}, 3, "192.0.2.50"},
		{"entries split over several values", inProcess{}, []string{"198.51.100.1", "192.0.2.50"}, 1, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr})
			if tc.forwarded != nil {
				md := metadata.MD{}
				for _, v := range tc.forwarded {
					md.Append("x-forwarded-for", v)
				}
				ctx = metadata.NewIncomingContext(ctx, md)
			}
			if got := ClientIP(ctx, tc.hops); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"": {}, "0": {},
		"20/s":    {Rate: 20, Burst: 20, Period: time.Second},
		"600/m":   {Rate: 600, Burst: 600, Period: time.Minute},
		"10000/h": {Rate: 10000, Burst: 10000, Period: time.Hour},
	} {
		if got, err := ParseLimit(in); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"20", "x/s", "-1/s", "0/s", "5/d", "5/"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}
