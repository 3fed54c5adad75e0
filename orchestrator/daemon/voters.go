package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/version"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/peer"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/orchestrator/voters"
)

// connect opens etcd (openEtcd) and the store over it, and secures the
// federation (secureFederation).
func connect(ctx context.Context, cfg config.Config, opts Options, stack *cleanup, dial ...grpc.DialOption) (*etcdAccess, *store.Store, error) {
	acc, err := openEtcd(ctx, cfg, opts.ForceNewCluster, opts.Log, stack, dial...)
	if err != nil {
		return nil, nil, err
	}
	st := store.New(acc.client, store.Options{Prefix: cfg.Etcd.Prefix, Timeout: cfg.Etcd.RequestTimeout, Clock: opts.Clock,
		Admin: acc.admin, LocalMembers: acc.members, Log: opts.Log})
	if err := secureFederation(ctx, cfg, acc, st, opts.Log); err != nil {
		return nil, nil, err
	}
	return acc, st, nil
}

// newKeeper is the site's keeper of its member's vote; its Run is a worker
// of a site with a member of its own.
func newKeeper(cfg config.Config, acc *etcdAccess, st *store.Store, clock clockwork.Clock, log *slog.Logger) *voters.Keeper {
	return voters.NewKeeper(st, voters.Options{Site: cfg.Site.Name, Self: acc.self, Policy: voters.Policy{Max: cfg.Federation.MaxVoters},
		Clock: clock, Log: log, Endpoints: st.SetEndpoints, Removed: acc.stopMember})
}

// voterPolicy is what add-site asks about the votes: the keeper, for a
// federation whose etcd is its sites' members; none for an external etcd.
func voterPolicy(acc *etcdAccess, k *voters.Keeper) peer.Voters {
	if !acc.managed {
		return nil
	}
	return k
}

// federationAPI is the federation as the API shows it: the store's
// cluster, with the voter policy's count and warnings when the federation
// manages its voters.
type federationAPI struct {
	*store.Store
	keeper  *voters.Keeper
	managed bool
}

func (f federationAPI) Federation(ctx context.Context) (api.Federation, error) {
	if f.managed {
		return f.keeper.Status(ctx)
	}
	return f.Store.Federation(ctx)
}

// leaveTimeout bounds leaving the federation, the wait for the voters'
// lock and a learner's catching up included.
const leaveTimeout = 2 * time.Minute

// leaving is a site's leaving of the federation for good, which
// `maoctl federation leave` asks for (httpapi.Leaver): the daemon shuts
// down as on SIGTERM, then leaves.
type leaving struct {
	site   string
	keeper *voters.Keeper
	store  *store.Store
	member *store.Membership
	log    *slog.Logger
	once   sync.Once
	asked  chan struct{} // closed when the site is asked to leave
	left   bool          // its lease is revoked; set and read by the daemon's own goroutine, after serve
}

// Leave checks that the site can leave now (its vote can be handed over)
// and has the daemon begin: it answers at once with what will become of
// the votes.
func (l *leaving) Leave(ctx context.Context) (api.LeaveResult, error) {
	plan, err := l.keeper.PlanLeave(ctx)
	if err != nil {
		return api.LeaveResult{}, err
	}
	l.log.Warn("asked to leave the federation for good: stopping", "voting", plan.Note)
	l.once.Do(func() { close(l.asked) })
	return api.LeaveResult{Site: l.site, Voting: plan}, nil
}

// leave revokes the site's lease and leaves the federation, once the
// daemon has stopped its work.
func (l *leaving) leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := l.member.Leave(ctx); err != nil {
		return fmt.Errorf("leave the federation: %w", err)
	}
	l.left = true
	return leaveFederation(ctx, l.site, l.keeper, l.store, l.log)
}

// leaveFederation takes the site's member out of the cluster (a learner
// promoted first if needed: voters.Keeper.Leave), then its records and
// its etcd user.
func leaveFederation(ctx context.Context, site string, k *voters.Keeper, st *store.Store, log *slog.Logger) error {
	plan, err := k.Leave(ctx)
	if err != nil {
		return fmt.Errorf("leave the federation: %w", err)
	}
	if err := st.LeaveFederation(ctx, site); err != nil {
		return fmt.Errorf("leave the federation: the etcd member is removed, but not the site's records and user: %w", err)
	}
	log.Info("left the federation for good", "voting", plan.Note)
	if plan.Warning != "" {
		log.Warn(plan.Warning)
	}
	return nil
}

// Leave makes the site of cfg, which must be stopped, leave the federation
// for good, and returns: it starts its embedded member (a witness's too),
// hands its vote to a learner if that is needed, removes the member, its
// records and its etcd user. It is `orchestrator -leave`, for a witness
// (which has no API for maoctl federation leave) and for a site that is
// stopped already.
func Leave(ctx context.Context, cfg config.Config, opts Options) error {
	opts = withDefaults(opts)
	if cfg.Etcd.Embedded() {
		if _, err := os.Stat(filepath.Join(cfg.Site.DataDir, "etcd", "member")); err != nil {
			return fmt.Errorf("-leave: this site has no etcd member to take out (%w): it is in no federation, or has left", err)
		}
	}
	if !pki.Dir(filepath.Join(cfg.Site.DataDir, "pki")).Exists() && cfg.Etcd.JoinToken != "" {
		return errors.New("-leave: this site has not joined the federation yet (it has a join token, and no certificates)")
	}
	var stack cleanup
	defer stack.run()
	if err := lockDataDir(cfg.Site.DataDir, &stack); err != nil {
		return fmt.Errorf("-leave: %w: stop it first, or ask it to leave (maoctl federation leave)", err)
	}
	opts.ForceNewCluster = false
	acc, st, err := connect(ctx, cfg, opts, &stack)
	if err != nil {
		return err
	}
	sites, err := st.KnownSites(ctx)
	if err != nil {
		return err
	}
	for _, s := range sites {
		if s.Name == cfg.Site.Name && s.Live {
			return fmt.Errorf("-leave: site %s is live (API %s): stop its orchestrator first, or ask it to leave (maoctl federation leave)",
				s.Name, s.APIAddr)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	return leaveFederation(ctx, cfg.Site.Name, newKeeper(cfg, acc, st, opts.Clock, opts.Log), st, opts.Log)
}

// startWitness starts a witness: the site's embedded etcd member, joined
// with a join token like a site's, and its keeper, which promotes the
// member when the voter policy lets it (two labs and a witness are three
// voters). It runs no Docker, no API and no runs, and writes no site
// record, so that no site takes it for one that runs tools: its record
// under witnesses/ marks its member for federation status.
func startWitness(ctx context.Context, cfg config.Config, opts Options, stack *cleanup) (*Daemon, error) {
	log := opts.Log
	if !cfg.Etcd.Embedded() {
		return nil, errors.New("-witness runs an etcd member of the federation's cluster: etcd.endpoints must be empty")
	}
	if !pki.Dir(filepath.Join(cfg.Site.DataDir, "pki")).Exists() && cfg.Etcd.JoinToken == "" {
		return nil, errors.New("-witness joins a federation, and founds none: set etcd.join_token, from " +
			"maoctl federation add-site NAME --peer-url URL --client-url URL at a site of the federation")
	}
	if err := os.MkdirAll(cfg.Site.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := lockDataDir(cfg.Site.DataDir, stack); err != nil {
		return nil, err
	}
	acc, st, err := connect(ctx, cfg, opts, stack)
	if err != nil {
		return nil, err
	}
	if err := st.SaveWitness(ctx, cfg.Site.Name, version.Version); err != nil {
		return nil, err
	}
	keeper := newKeeper(cfg, acc, st, opts.Clock, log)
	log.Info("witness ready", "site", cfg.Site.Name, "member", acc.self, "etcd", cfg.Etcd.ClientURL)
	serve := func(ctx context.Context) error {
		keepCtx, stopKeep := context.WithCancel(context.Background())
		kept := make(chan struct{})
		go func() { defer close(kept); keeper.Run(keepCtx) }()
		var err error
		select {
		case <-ctx.Done():
			log.Info("shutting down")
		case err = <-acc.errs:
			err = fmt.Errorf("embedded etcd: %w", err)
		}
		stopKeep()
		<-kept
		log.Info("stopped")
		return err
	}
	return &Daemon{serve: serve, done: make(chan struct{})}, nil
}
