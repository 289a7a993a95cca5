package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/consentd/consentd/server/keys"
)

// Subject tokens are JWTs signed with HMAC-SHA256 (RFC 7519, through
// golang-jwt): the "sub" claim is the one subject they open, "exp" when they
// stop working, and the "kid" header names the token key, so a new key can
// sign new tokens while tokens of an older key stay valid until they expire.
const (
	tokenIssuer   = "consentd"
	tokenAudience = "consentd"
)

// Token errors. Both become Unauthenticated.
var (
	ErrTokenExpired = errors.New("subject token expired")
	ErrTokenInvalid = errors.New("subject token invalid")
)

// Tokens mints and verifies subject tokens.
type Tokens struct {
	keys []keys.Key // the first signs
	ttl  time.Duration
	now  func() time.Time
}

// NewTokens returns a minter and verifier over the token keys (active
// first). Tokens live for ttl.
func NewTokens(tokenKeys []keys.Key, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(tokenKeys) == 0 {
		return nil, errors.New("no token keys")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token lifetime must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{keys: tokenKeys, ttl: ttl, now: now}, nil
}

// Issue mints a token for subjectID.
func (t *Tokens) Issue(subjectID string) (token string, expires time.Time, err error) {
	now := t.now().UTC().Truncate(time.Second)
	expires = now.Add(t.ttl)
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Audience:  jwt.ClaimStrings{tokenAudience},
		Subject:   subjectID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
	}
	jt := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	jt.Header["kid"] = t.keys[0].ID
	token, err = jt.SignedString(t.keys[0].Secret)
	return token, expires, err
}

// Verify checks a token's signature, issuer, audience and expiry, and
// returns the subject it is bound to.
func (t *Tokens) Verify(token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, t.keyFor,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
		jwt.WithStrictDecoding(),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", ErrTokenExpired
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	case claims.Subject == "":
		return "", fmt.Errorf("%w: no subject", ErrTokenInvalid)
	}
	return claims.Subject, nil
}

func (t *Tokens) keyFor(jt *jwt.Token) (any, error) {
	kid, _ := jt.Header["kid"].(string)
	for _, k := range t.keys {
		if k.ID == kid {
			return k.Secret, nil
		}
	}
	return nil, errors.New("unknown key id")
}

// LooksLikeToken tells a subject token (three dot-separated parts) from an
// API key, so each presented credential is checked by the right verifier.
func LooksLikeToken(credential string) bool {
	return strings.Count(credential, ".") == 2
}

// NewVisitorID is a fresh anonymous visitor id: "v_" and 128 random bits.
func NewVisitorID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return "v_" + base64.RawURLEncoding.EncodeToString(b[:])
}
