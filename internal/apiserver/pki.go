package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the server's credentials, kept in DIR/pki and reused on restart:
// a CA, the serving certificate (127.0.0.1, ::1, localhost and the listen
// address) and the one client certificate (CN peapod-admin, O system:masters)
// that the kubeconfig holds.
type pki struct {
	caPEM                 []byte
	caPool                *x509.CertPool
	serving               tls.Certificate
	clientCert, clientKey []byte
}

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
)

func loadOrCreatePKI(dir string, hosts []string, now time.Time) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	caCert, caKey, err := loadOrCreateCert(dir, "ca", now, nil, nil, func(t *x509.Certificate) {
		t.Subject = pkix.Name{CommonName: "peapod-ca"}
		t.IsCA = true
		t.BasicConstraintsValid = true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
		t.NotAfter = now.Add(caValidity)
	})
	if err != nil {
		return nil, err
	}
	servingCert, servingKey, err := loadOrCreateCert(dir, "apiserver", now, caCert, caKey, func(t *x509.Certificate) {
		t.Subject = pkix.Name{CommonName: "peapod-apiserver"}
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				t.IPAddresses = append(t.IPAddresses, ip)
			} else {
				t.DNSNames = append(t.DNSNames, h)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if err := coversHosts(servingCert, hosts); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to generate a new one)", filepath.Join(dir, "apiserver.crt"), err)
	}
	clientCert, clientKey, err := loadOrCreateCert(dir, "admin", now, caCert, caKey, func(t *x509.Certificate) {
		t.Subject = pkix.Name{CommonName: "peapod-admin", Organization: []string{"system:masters"}}
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	if err != nil {
		return nil, err
	}
	p := &pki{caPEM: encodeCert(caCert), caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	if p.serving, err = tls.X509KeyPair(encodeCert(servingCert), mustEncodeKey(servingKey)); err != nil {
		return nil, fmt.Errorf("serving key pair: %w", err)
	}
	p.clientCert, p.clientKey = encodeCert(clientCert), mustEncodeKey(clientKey)
	return p, nil
}

func coversHosts(c *x509.Certificate, hosts []string) error {
	for _, h := range hosts {
		if err := c.VerifyHostname(h); err != nil {
			return fmt.Errorf("serving certificate does not cover %s", h)
		}
	}
	return nil
}

// loadOrCreateCert reads NAME.crt and NAME.key from dir, or creates them
// signed by parent (self-signed when parent is nil).
func loadOrCreateCert(dir, name string, now time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, fill func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	cert, key, err := loadCert(certPath, keyPath)
	if err == nil {
		return cert, key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
	}
	fill(tmpl)
	signer, signerKey := parent, parentKey
	if parent == nil {
		signer, signerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create %s certificate: %w", name, err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(keyPath, mustEncodeKey(key), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(certPath, encodeCert(cert), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func loadCert(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s: no PEM data", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", keyPath, err)
	}
	return cert, key, nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func mustEncodeKey(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		// Only fails for keys on curves x509 does not know; ours is P-256.
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
