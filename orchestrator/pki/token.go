package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// tokenPrefix starts every join token, so that a pasted one is recognised.
const tokenPrefix = "maojoin1."

// JoinToken lets one new site join a federation once. It holds where to
// present it (a site's federation address), which token it is, its secret,
// and the fingerprint of the federation's CA, so that the new site checks
// that the site answering is the federation's before it sends anything.
type JoinToken struct {
	Addr          string `json:"a"` // https://host:port of the issuing site's federation API
	ID            string `json:"i"`
	Secret        string `json:"s"`
	CAFingerprint string `json:"f"`
}

// NewJoinToken returns a token for addr and ca with a fresh ID and secret.
func NewJoinToken(addr string, ca *CA) JoinToken {
	return JoinToken{Addr: addr, ID: randomHex(8), Secret: randomHex(32), CAFingerprint: ca.Fingerprint()}
}

// String encodes the token as one word for a config file.
func (t JoinToken) String() string {
	data, _ := json.Marshal(t) // strings only: cannot fail
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(data)
}

// ParseJoinToken decodes and checks a token.
func ParseJoinToken(s string) (JoinToken, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return JoinToken{}, fmt.Errorf("not a join token: it must start with %q (get one with maoctl federation add-site)", tokenPrefix)
	}
	data, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return JoinToken{}, errors.New("join token: damaged (not base64url); copy it whole")
	}
	var t JoinToken
	if err := json.Unmarshal(data, &t); err != nil {
		return JoinToken{}, errors.New("join token: damaged; copy it whole")
	}
	u, err := url.Parse(t.Addr)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/":
		return JoinToken{}, fmt.Errorf("join token: %q is not an https://host:port address", t.Addr)
	case !isHex(t.ID, 16) || !isHex(t.Secret, 64) || !isHex(t.CAFingerprint, 64):
		return JoinToken{}, errors.New("join token: damaged; copy it whole")
	}
	return t, nil
}

// SecretHash is what a federation stores of a token's secret.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports, in constant time, whether secret hashes to hash.
func SecretMatches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(SecretHash(secret)), []byte(hash)) == 1
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails
	return hex.EncodeToString(b)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// JoinGrant is what the federation keeps of a join token until it is used
// or expires: the site it is for and where that site's member will listen,
// and a hash of the secret (never the secret itself).
type JoinGrant struct {
	ID         string    `json:"id"`
	Site       string    `json:"site"`
	PeerURL    string    `json:"peer_url"`
	ClientURL  string    `json:"client_url"`
	SecretHash string    `json:"secret_sha256"`
	IssuedBy   string    `json:"issued_by"` // the site that issued it
	ExpiresAt  time.Time `json:"expires_at"`
}
