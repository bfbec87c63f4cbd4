package apiserver

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile is the bearer token accepted besides the client certificate,
// DIR/pki/token (mode 0600), generated once and kept across restarts.
const tokenFile = "token"

// loadOrCreateToken reads dir/token, or writes a new random one (32 bytes,
// hex) when there is none.
func loadOrCreateToken(dir string) ([]byte, error) {
	path := filepath.Join(dir, tokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		tok := bytes.TrimSpace(data)
		if len(tok) == 0 {
			return nil, fmt.Errorf("%s is empty (remove it to generate a new token)", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate token: %w", err)
	}
	tok := []byte(hex.EncodeToString(raw))
	if err := writeFileAtomic(path, append(tok, '\n'), 0o600); err != nil {
		return nil, err
	}
	return tok, nil
}

// authenticate returns the user a request is authenticated as: the verified
// client certificate's CN, else "peapod-admin" for the bearer token; ok is
// false for neither.
func (s *Server) authenticate(r *http.Request) (user string, ok bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return r.TLS.VerifiedChains[0][0].Subject.CommonName, true
	}
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "bearer") || len(s.token) == 0 {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if subtle.ConstantTimeCompare([]byte(tok), s.token) != 1 {
		return "", false
	}
	return "peapod-admin", true
}
