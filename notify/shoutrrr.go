package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/nicholas-fedor/shoutrrr/pkg/format"
	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/specialized/generic"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// Sender sends one message to one channel URL.
type Sender interface {
	Send(ctx context.Context, url string, m Message) error
}

// ShoutrrrSender sends through shoutrrr, to any of its services: slack://,
// smtp://, teams://, telegram://, matrix://, generic://, ... (see
// shoutrrr's documentation for each service's URL).
//
// The title goes where the service has one (the e-mail's subject, the
// title of a generic webhook's JSON with template=json, ...); a service
// without one, and a generic webhook without a template (which posts the
// body as plain text), gets it as the first line of the body.
type ShoutrrrSender struct {
	// inflight bounds the sends under way, including those whose ctx has
	// ended but whose service call goes on: a webhook that never answers
	// cannot pile up goroutines.
	inflight chan struct{}
}

var _ Sender = (*ShoutrrrSender)(nil)

// MaxInflight is how many sends a ShoutrrrSender has under way at most.
const MaxInflight = 16

// NewShoutrrrSender returns a ShoutrrrSender.
func NewShoutrrrSender() *ShoutrrrSender {
	return &ShoutrrrSender{inflight: make(chan struct{}, MaxInflight)}
}

// Send sends m to the channel at url. It returns when ctx ends, with
// ctx's error; the service's own call then goes on in the background
// until its own time limit (shoutrrr's services give up after about 10s;
// its generic webhook has no limit of its own), and may still deliver.
// While MaxInflight such calls are under way, Send waits for one to end,
// or for ctx.
//
// Errors never hold the URL's secrets: they name the channel by its
// redacted URL and have the secrets hidden from shoutrrr's own text.
func (s *ShoutrrrSender) Send(ctx context.Context, rawURL string, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send to %s: %w", Redact(rawURL), err)
	}
	svc, err := service(rawURL)
	if err != nil {
		return fmt.Errorf("channel %s: %w", Redact(rawURL), errors.New(Scrub(rawURL, err.Error())))
	}
	body, params := m.Body, types.Params{}
	if hasTitle(svc) {
		params.SetTitle(m.Title)
	} else if m.Title != "" {
		body = m.Title + "\n\n" + m.Body
	}
	select {
	case s.inflight <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("send to %s: %d earlier sends still wait for their channels: %w", Redact(rawURL), MaxInflight, ctx.Err())
	}
	done := make(chan error, 1) // the goroutine never blocks on it
	go func() {
		defer func() { <-s.inflight }()
		done <- svc.Send(body, &params)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("send to %s: %w", Redact(rawURL), errors.New(Scrub(rawURL, err.Error())))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("send to %s: %w", Redact(rawURL), ctx.Err())
	}
}

// service returns the shoutrrr service of a URL, initialised: a router of
// its own for each URL, so that nothing is shared between sends. It does
// what shoutrrr's router.Locate does, but keeps the cause of an error
// (such as a missing setting), which Locate drops.
// CheckURL reports whether rawURL names a service that shoutrrr can send
// to: a known scheme (slack, smtp, generic, ...), or a custom URL such as
// generic+https:// that the service converts. It does not initialise the
// service, which for some (matrix) means logging in over the network. Its
// error never holds the URL's secrets.
func CheckURL(rawURL string) error {
	r := &router.ServiceRouter{}
	scheme, u, err := r.ExtractServiceName(rawURL)
	if err != nil {
		return errors.New("is not a URL")
	}
	svc, err := r.NewService(scheme)
	if err != nil {
		return fmt.Errorf("names no service that mao can send to (%q is not one of shoutrrr's schemes, such as slack, smtp, teams, telegram, matrix or generic)", scheme)
	}
	if u.Scheme != scheme {
		custom, ok := svc.(types.CustomURLService)
		if !ok {
			return fmt.Errorf("service %s takes no custom URL (%s)", scheme, u.Scheme)
		}
		if _, err := custom.GetConfigURLFromCustom(u); err != nil {
			return errors.New(Scrub(rawURL, fmt.Sprintf("is not a %s URL: %v", u.Scheme, err)))
		}
	}
	return nil
}

func service(rawURL string) (types.Service, error) {
	r := &router.ServiceRouter{}
	scheme, u, err := r.ExtractServiceName(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	svc, err := r.NewService(scheme)
	if err != nil {
		return nil, err
	}
	if u.Scheme != scheme { // a custom URL, such as generic+https://
		custom, ok := svc.(types.CustomURLService)
		if !ok {
			return nil, fmt.Errorf("service %s takes no custom url", scheme)
		}
		if u, err = custom.GetConfigURLFromCustom(u); err != nil {
			return nil, fmt.Errorf("convert custom url: %w", err)
		}
	}
	if err := svc.Initialize(u, nil); err != nil {
		return nil, fmt.Errorf("initialise %s: %w", scheme, err)
	}
	return svc, nil
}

// hasTitle reports whether a service shows a title parameter. A generic
// webhook does only with a template (template=json).
func hasTitle(svc types.Service) (ok bool) {
	if g, isGeneric := svc.(*generic.Service); isGeneric {
		return g.Config.Template != ""
	}
	defer func() {
		if recover() != nil { // format.GetServiceConfig panics on a service without a Config
			ok = false
		}
	}()
	_, err := format.GetConfigQueryResolver(format.GetServiceConfig(svc)).Get(types.TitleKey)
	return err == nil
}
