package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ServerTLS is the TLS configuration of a site's federation API: it serves
// with the site's certificate and asks callers for theirs, verified against
// the CA when given (a new site presenting a join token has none yet).
func (d Dir) ServerTLS() (*tls.Config, error) {
	ca, err := d.CA()
	if err != nil {
		return nil, err
	}
	pair, err := d.Pair(SiteCertFile, SiteKeyFile)
	if err != nil {
		return nil, fmt.Errorf("site certificate: %w", err)
	}
	// Send the CA with the site's certificate, so that a joining site can
	// compare it with its token's fingerprint.
	pair.Certificate = append(pair.Certificate, ca.Cert.Raw)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// ClientTLS is the TLS configuration of a site calling another: it
// presents certFile/keyFile (SiteCertFile and SiteKeyFile, or the root
// pair) and trusts only the CA.
func (d Dir) ClientTLS(certFile, keyFile string) (*tls.Config, error) {
	ca, err := d.CA()
	if err != nil {
		return nil, err
	}
	pair, err := d.Pair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: ca.Pool()}, nil
}

// PinnedTLS is the TLS configuration of a new site presenting a join
// token: it has no certificate yet, and trusts only a server whose chain
// ends in a CA with the token's fingerprint. It returns that CA too, once
// the handshake has checked it, through caOut.
func PinnedTLS(fingerprint string, caOut **x509.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, against the pinned CA instead of the system's roots
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("the site did not send the federation's CA with its certificate")
			}
			ca, err := x509.ParseCertificate(raw[len(raw)-1])
			if err != nil {
				return err
			}
			if Fingerprint(ca) != fingerprint {
				return fmt.Errorf("the site's CA has fingerprint %s, not the join token's %s: this is not the federation that issued the token", Fingerprint(ca), fingerprint)
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the site's certificate is not the federation CA's: %w", err)
			}
			if caOut != nil {
				*caOut = ca
			}
			return nil
		},
	}
}
