package auth

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const testKey = "key-0123456789abcdefghijklmnopqrstuvwxyz"

func authenticator(t *testing.T, demo bool) *Authenticator {
	t.Helper()
	keys, err := SingleAPIKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return NewAuthenticator(keys, minter(t, epoch, keyA), demo, slog.New(slog.DiscardHandler))
}

func withAuthorization(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestTheBearerSchemeNameIsCaseInsensitive(t *testing.T) {
	a := authenticator(t, false)
	for _, header := range []string{"Bearer " + testKey, "bearer " + testKey, "BEARER " + testKey, "bEaReR  " + testKey} {
		p, err := a.authenticate(withAuthorization(header))
		if err != nil || p.Kind != Service {
			t.Errorf("%.10q: got %v, %v; want the key's service", header, p.Kind, err)
		}
	}
}

func TestAnEmptyBearerIsNoCredentialInDemoModeAndAClearErrorOtherwise(t *testing.T) {
	// What `Authorization: Bearer $KEY` sends with $KEY unset; HTTP trims
	// the trailing space, gRPC metadata keeps it.
	for _, header := range []string{"Bearer ", "Bearer", "bearer", ""} {
		p, err := authenticator(t, true).authenticate(withAuthorization(header))
		if err != nil || p.Kind != Demo {
			t.Errorf("demo mode, %q: got %v, %v; want the demo principal", header, p.Kind, err)
		}
		_, err = authenticator(t, false).authenticate(withAuthorization(header))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "Authorization: Bearer with no credential after it") {
			t.Errorf("%q: got %v; want Unauthenticated naming the empty bearer", header, err)
		}
	}
}

func TestOtherAuthorizationSchemesAndRepeatedHeadersAreRefused(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"Basic dXNlcjpwYXNz"}, `authorization: must be "Bearer <API key or subject token>"`},
		{[]string{"Bearer" + testKey}, `authorization: must be "Bearer <API key or subject token>"`},
		{[]string{"Bearer " + testKey, "Bearer " + testKey}, "authorization: send one Authorization header, got 2"},
	} {
		for _, demo := range []bool{false, true} {
			_, err := authenticator(t, demo).authenticate(withAuthorization(tc.values...))
			if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != tc.want {
				t.Errorf("demo=%v %.12q: got %v; want Unauthenticated %q", demo, tc.values, err, tc.want)
			}
		}
	}
}
