package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Common names of the federation's identities.
const (
	RootName   = "root"    // the federation's administration
	sitePrefix = "site:"   // site:<name>
	readPrefix = "reader:" // reader:<name>
)

// SiteUser is the common name (and etcd user) of site name.
func SiteUser(name string) string { return sitePrefix + name }

// ReaderUser is the common name (and etcd user) of collaborator name.
func ReaderUser(name string) string { return readPrefix + name }

// SiteOf returns the site a common name names, if it is a site's.
func SiteOf(cn string) (string, bool) { return strings.CutPrefix(cn, sitePrefix) }

// How long certificates are valid, and when a site renews its own.
const (
	caValidity   = 20 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// CA is the federation's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // Cert, PEM-encoded
}

// Fingerprint is the SHA-256 of the CA certificate, hex: what a join token
// pins, so that a new site checks whom it joins.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is the SHA-256 of a certificate's DER bytes, in hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Pool is a cert pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// NewCA creates a CA named name for the federation that site founds,
// valid from now, and returns its key PEM-encoded.
func NewCA(site string, now time.Time, name string) (*CA, []byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mao"}, OrganizationalUnit: []string{"founded by " + site}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: encodeCert(der)}, keyPEM, nil
}

// ParseCA reads a CA from its certificate and key, PEM-encoded.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("the CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key, PEM: certPEM}, nil
}

// Use is what a certificate is for.
type Use int

// Certificate uses.
const (
	ClientOnly      Use = iota + 1 // a client of etcd or of sites' APIs
	ServerAndClient                // a site: it serves (etcd, its federation API) and calls others
)

// Request is a certificate to issue.
type Request struct {
	CommonName string
	Public     crypto.PublicKey
	Use        Use
	Hosts      []string // DNS names and IP addresses it serves under (ServerAndClient)
}

// Issue signs req's certificate, valid for a year from now, and returns
// it PEM-encoded.
func (ca *CA) Issue(req Request, now time.Time) ([]byte, error) {
	if req.CommonName == "" || req.Public == nil {
		return nil, errors.New("issue a certificate: no common name or key")
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"mao"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Use == ServerAndClient {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		for _, h := range req.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.Public, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue a certificate for %s: %w", req.CommonName, err)
	}
	return encodeCert(der), nil
}

// NewKey returns a new private key, and its PEM encoding.
func NewKey() (crypto.Signer, []byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	return key, keyPEM, err
}

func newKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a key: %w", err)
	}
	return key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // crypto/rand never fails
	return n
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode a key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCert reads the first certificate of PEM data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// ParseKey reads a PKCS #8 private key from PEM data.
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key cannot sign")
	}
	return signer, nil
}

// ParsePublicKey reads a PKIX public key from PEM data.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM public key")
	}
	return x509.ParsePKIXPublicKey(b.Bytes)
}

// EncodePublicKey is key, PEM-encoded as PKIX.
func EncodePublicKey(key crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// Dir is a site's PKI directory, <data_dir>/pki: the CA's certificate and
// key, the site's certificate and key, and its administration (root)
// certificate and key. Keys are written 0600, in a directory of 0700.
type Dir string

// The files of a Dir. Collaborators' read-only certificates come from a
// CA of their own, so that etcd's peer port, which trusts only the
// federation CA, never admits them.
const (
	CACertFile        = "ca.crt"
	CAKeyFile         = "ca.key"
	ReadersCACertFile = "readers-ca.crt"
	ReadersCAKeyFile  = "readers-ca.key"
	ClientsCAFile     = "clients-ca.crt" // both CAs: whom etcd's client port admits
	SiteCertFile      = "site.crt"
	SiteKeyFile       = "site.key"
	RootCertFile      = "root.crt"
	RootKeyFile       = "root.key"
)

// Path is the path of one of the Dir's files.
func (d Dir) Path(file string) string { return filepath.Join(string(d), file) }

// Exists reports whether the Dir holds a CA certificate: the site belongs
// to a federation with a PKI.
func (d Dir) Exists() bool {
	_, err := os.Stat(d.Path(CACertFile))
	return err == nil
}

// CA reads the federation CA from the Dir.
func (d Dir) CA() (*CA, error) { return d.readCA(CACertFile, CAKeyFile) }

// ReadersCA reads the CA of collaborators' certificates from the Dir.
func (d Dir) ReadersCA() (*CA, error) { return d.readCA(ReadersCACertFile, ReadersCAKeyFile) }

func (d Dir) readCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(d.Path(certFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(d.Path(keyFile))
	if err != nil {
		return nil, err
	}
	return ParseCA(certPEM, keyPEM)
}

// Write writes files (name → content) into the Dir, each atomically
// (written to a temporary file, synced, renamed), keys with mode 0600.
func (d Dir) Write(files map[string][]byte) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("pki directory: %w", err)
	}
	for name, data := range files {
		if err := writeFile(d.Path(name), data); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Pair loads a certificate and its key from the Dir.
func (d Dir) Pair(certFile, keyFile string) (tls.Certificate, error) {
	return tls.LoadX509KeyPair(d.Path(certFile), d.Path(keyFile))
}

// Site is what a site needs to set up its own certificates.
type Site struct {
	Name  string
	Hosts []string // the names and addresses it serves under
}

// Ensure makes sure the Dir holds a CA (creating one when create is set
// and there is none: this site founds a federation), a certificate for the
// site valid for its hosts, and an administration certificate; either
// certificate is issued again when it is missing, expires within a
// month, or (the site's) does not cover every host. It reports whether it
// created the CA.
func (d Dir) Ensure(site Site, create bool, now time.Time) (created bool, err error) {
	ca, err := d.CA()
	if errors.Is(err, os.ErrNotExist) && create {
		if ca, err = d.found(site.Name, now); err != nil {
			return false, err
		}
		created = true
	} else if err != nil {
		return false, fmt.Errorf("read the federation CA in %s: %w", d, err)
	}
	hosts := hostSet(site.Hosts)
	for _, c := range []struct {
		certFile, keyFile, cn string
		use                   Use
	}{
		{SiteCertFile, SiteKeyFile, SiteUser(site.Name), ServerAndClient},
		{RootCertFile, RootKeyFile, RootName, ClientOnly},
	} {
		if d.current(c.certFile, c.keyFile, c.cn, ca, c.use, hosts, now) {
			continue
		}
		key, keyPEM, err := NewKey()
		if err != nil {
			return created, err
		}
		certPEM, err := ca.Issue(Request{CommonName: c.cn, Public: key.Public(), Use: c.use, Hosts: hosts}, now)
		if err != nil {
			return created, err
		}
		if err := d.Write(map[string][]byte{c.keyFile: keyPEM, c.certFile: certPEM}); err != nil {
			return created, err
		}
	}
	return created, nil
}

// found creates the federation's two CAs and the bundle of both.
func (d Dir) found(site string, now time.Time) (*CA, error) {
	ca, keyPEM, err := NewCA(site, now, "mao federation CA")
	if err != nil {
		return nil, err
	}
	readers, readersKey, err := NewCA(site, now, "mao collaborators CA")
	if err != nil {
		return nil, err
	}
	err = d.Write(map[string][]byte{CACertFile: ca.PEM, CAKeyFile: keyPEM, ReadersCACertFile: readers.PEM,
		ReadersCAKeyFile: readersKey, ClientsCAFile: append(slices.Clone(ca.PEM), readers.PEM...)})
	return ca, err
}

// current reports whether the Dir's certificate is usable as it is: it
// parses, matches its key, is signed by ca for cn, is not about to
// expire, and (for a server) covers every host.
func (d Dir) current(certFile, keyFile, cn string, ca *CA, use Use, hosts []string, now time.Time) bool {
	pair, err := d.Pair(certFile, keyFile)
	if err != nil {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || cert.Subject.CommonName != cn || cert.CheckSignatureFrom(ca.Cert) != nil ||
		now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	if use != ServerAndClient {
		return true
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// hostSet is hosts with the loopback names added, without duplicates.
func hostSet(hosts []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		h = strings.Trim(h, "[]")
		if h != "" && !seen[h] && h != "0.0.0.0" && h != "::" {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// IssueReader issues a collaborator's read-only certificate (common name
// "reader:<name>") from the collaborators' CA, with a new key; both PEM.
func (d Dir) IssueReader(name string, now time.Time) (certPEM, keyPEM []byte, err error) {
	ca, err := d.ReadersCA()
	if err != nil {
		return nil, nil, fmt.Errorf("read the collaborators' CA: %w", err)
	}
	key, keyPEM, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = ca.Issue(Request{CommonName: ReaderUser(name), Public: key.Public(), Use: ClientOnly}, now)
	return certPEM, keyPEM, err
}

// CAFiles are the files a joining site receives: both CAs with their keys
// and the bundle. With them it issues its own certificates (Ensure).
var CAFiles = []string{CACertFile, CAKeyFile, ReadersCACertFile, ReadersCAKeyFile, ClientsCAFile}

// ReadCAFiles returns the contents of CAFiles.
func (d Dir) ReadCAFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range CAFiles {
		data, err := os.ReadFile(d.Path(f))
		if err != nil {
			return nil, err
		}
		out[f] = data
	}
	return out, nil
}
