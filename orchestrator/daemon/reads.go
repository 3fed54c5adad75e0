package daemon

import (
	"context"

	"github.com/mao-research/mao/orchestrator/federation"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// registryReads is the registries as the API reads them: a record from
// etcd, a list from the site's copy of the registry (which reads etcd
// while its copy is behind).
type registryReads struct {
	*store.Store
	copy *federation.Registry
}

func (r registryReads) Tools(ctx context.Context) ([]toolspec.Tool, error) { return r.copy.Tools(ctx) }

func (r registryReads) ToolPage(ctx context.Context, after string, limit int) ([]toolspec.Tool, string, error) {
	return r.copy.ToolPage(ctx, after, limit)
}

func (r registryReads) DatasetPage(ctx context.Context, after string, limit int) ([]toolspec.Dataset, string, error) {
	return r.copy.DatasetPage(ctx, after, limit)
}
