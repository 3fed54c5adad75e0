package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits of the API's HTTP server. A client that sends its request slowly,
// or reads the answer slowly, or idles, loses its connection; the daemon
// also bounds how many connections are open at once ([api]
// max_connections). Logs lift the write timeout (runLogs): a followed log
// streams for as long as its run lasts.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute     // the whole request, its body (at most maxBody) included
	writeTimeout      = 2 * time.Minute // from the end of the request's header to the end of the answer; a notify test may take a while
	idleTimeout       = 2 * time.Minute // between requests on a kept-alive connection
	maxHeaderBytes    = 64 << 10
)

// HTTPServer returns an http.Server that serves s with the API's timeouts
// and header limit. The caller serves it on a listener (with TLS when the
// site has a certificate) and shuts it down.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake failures, panics: into the site's log.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
