package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDocument is the OpenAPI 3 document of the API, made from the
// code by the test TestOpenAPIDocument (openapi_doc_test.go: one routeDoc
// per route, schemas generated from the api types), which fails when it
// is not what the code makes: go test ./orchestrator/httpapi -run
// TestOpenAPIDocument -update rewrites it. Embedded, so that the
// orchestrator does not link the generator.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPI answers the document.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	_, _ = w.Write(openAPIDocument)
}
