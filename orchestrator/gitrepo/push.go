package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// PushOptions say where Push sends a clone's commits.
type PushOptions struct {
	// Branch is the remote branch the commits go to; "" means the branch
	// the clone follows (HEAD's).
	Branch string
	// ConflictBranch receives, instead of Branch, a commit that changes a
	// path which the remote changed too, to other content, since the
	// commit's parent: the commit's change is then applied to
	// ConflictBranch's head (or to Branch's, when ConflictBranch does not
	// exist yet), the commit's content winning. Empty: such a commit goes
	// to Branch all the same, its content winning (Branch belongs to this
	// site alone).
	ConflictBranch string
	// Attempts bounds the pushes tried when the remote answers that a
	// branch moved since Push looked (another site pushed first): each
	// time Push looks again, fetches what is new, rebases again and
	// retries. Default 5.
	Attempts int
	// Wait is called before attempt n (n ≥ 2) and waits a while; it
	// returns ctx's error when ctx ends. Default: a random time of up to
	// 50ms·2ⁿ on the real clock, so that sites that raced do not race
	// again.
	Wait func(ctx context.Context, attempt int) error
	// Want are commits of the clone (runs' commits, as Commit returned
	// them) whose place on the remote the caller asks about, besides the
	// commits this Push sends: a commit that an earlier Push sent is
	// looked for among the remote's recent commits.
	Want []string
}

// PushResult is what Push did.
type PushResult struct {
	// Commits are the clone's commits that are on the remote, oldest
	// first: those this Push sent, those it found there already (sent by
	// an earlier Push that was cut short), and the wanted ones it found.
	Commits []Pushed
	// Sent counts the commits this Push sent.
	Sent int
	// Attempts counts the pushes tried: more than 1 when the remote moved
	// meanwhile; 0 when there was nothing to send.
	Attempts int
}

// Pushed is a commit of the clone and where it is on the remote.
type Pushed struct {
	Local  string // the commit in the clone
	Remote string // the commit on the remote: Local itself, or Local rebased
	Branch string // the remote branch that holds Remote
	// Conflict: Remote is on PushOptions.ConflictBranch, because a path
	// that Local changed was changed on Branch too.
	Conflict bool
}

// ErrRemoteMoved means the remote's branch kept moving while Push tried
// (other sites pushed first every time): the commits stay in the clone,
// for the next Push.
var ErrRemoteMoved = errors.New("the remote branch moved under every attempt")

// defaultPushAttempts bounds a Push's attempts.
const defaultPushAttempts = 5

// maxSearch bounds the remote commits Push reads looking for a commit of
// the clone that an earlier Push sent.
const maxSearch = 1000

// pushedRef is the ref, in a clone's git directory, that marks how far the
// local branch is on the remote: the newest commit of the branch whose
// changes the remote holds (as itself or rebased). Sync sets it to the
// remote's head when it moves the branch there, Push to the branch's head
// once it has sent what was after it. The commits after it are the clone's
// outbox.
func pushedRef(branch plumbing.ReferenceName) plumbing.ReferenceName {
	return plumbing.ReferenceName("refs/mao/pushed/" + branch.Short())
}

// Push sends the commits of dir's branch that the remote does not hold
// yet (those after its pushed mark: see pushedRef) to the branch
// opts.Branch of the clone's origin, over the transport its URL names and
// with the Options' Auth. It never forces: it reads the remote's head,
// fetches it when it lacks it, and rebases the commits onto it, one by
// one, in the git directory alone (the work tree and the index are left
// as they are; the next Sync moves the clone to the remote's head, other
// sites' files included). Each commit keeps its message, author and
// committer. A commit that changes a path which the remote changed to
// other content goes to opts.ConflictBranch instead. Commits that an
// earlier Push sent but did not mark (it was cut short) are found on the
// remote and not sent again. When the remote refuses because its branch
// moved meanwhile, Push waits (opts.Wait) and tries again, at most
// opts.Attempts times, then returns ErrRemoteMoved.
//
// Errors leave the commits in the clone for the next Push. They name the
// remote without credentials, and never hold a secret of the Auth.
func (r *Repos) Push(ctx context.Context, dir string, opts PushOptions) (PushResult, error) {
	unlock, err := r.lock(ctx, dir)
	if err != nil {
		return PushResult{}, err
	}
	defer unlock()
	c, err := openClone(dir)
	if err != nil {
		return PushResult{}, err
	}
	head, err := c.head()
	if err != nil {
		return PushResult{}, err
	}
	if head.branch == "" {
		return PushResult{}, fmt.Errorf("push %s: HEAD is detached at %s, not on a branch", dir, head.hash)
	}
	rawURL, err := originURL(c.repo, dir, "")
	if err != nil {
		return PushResult{}, err
	}
	auth, err := r.opts.Auth.method(rawURL)
	if err != nil {
		return PushResult{}, fmt.Errorf("push to %s: %w", redact(rawURL), err)
	}
	p := &pusher{r: r, c: c, head: head, url: rawURL, auth: auth, ca: r.opts.Auth.caBundle(),
		target: plumbing.NewBranchReferenceName(head.branch.Short()), want: opts.Want}
	if opts.Branch != "" {
		p.target = plumbing.NewBranchReferenceName(opts.Branch)
	}
	if opts.ConflictBranch != "" {
		p.conflict = plumbing.NewBranchReferenceName(opts.ConflictBranch)
	}
	if len(opts.Want) == 0 {
		// Nothing after the pushed mark and no commit to look for: the
		// remote is not contacted (a site's start looks at every clone).
		if queue, _, err := p.queue(); err != nil || len(queue) == 0 {
			return PushResult{}, err
		}
	}
	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = defaultPushAttempts
	}
	wait := opts.Wait
	if wait == nil {
		wait = jitter
	}
	var res PushResult
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if err := wait(ctx, attempt); err != nil {
				return res, err
			}
		}
		var moved bool
		res, moved, err = p.round(ctx)
		if res.Sent > 0 || moved {
			res.Attempts = attempt
		}
		switch {
		case err != nil:
			return res, p.explain(err)
		case !moved:
			return res, nil
		case attempt >= attempts:
			return res, fmt.Errorf("push to %s: %w (%d attempts)", redact(rawURL), ErrRemoteMoved, attempt)
		}
	}
}

// jitter waits up to 50ms·2ⁿ, at random.
func jitter(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(50*time.Millisecond) << min(attempt, 8)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pusher is one Push of one clone.
type pusher struct {
	r        *Repos
	c        *clone
	head     headInfo
	url      string
	auth     transport.AuthMethod
	ca       []byte
	target   plumbing.ReferenceName
	conflict plumbing.ReferenceName // "" when conflicts stay on target
	want     []string
	caps     *capability.List // the remote's, from its advertisement
}

// explain wraps a push's error with the remote's URL (without
// credentials) and, for a refused login, where the site's credentials
// are.
func (p *pusher) explain(err error) error {
	hint := ""
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, transport.ErrAuthenticationRequired.Error()), strings.Contains(msg, transport.ErrAuthorizationFailed.Error()):
		hint = " (the site's [git] credentials_file has no valid user and password for this host)"
	case strings.Contains(msg, "knownhosts"):
		hint = " (the site's [git] known_hosts_file does not list this key for this host)"
	case strings.Contains(msg, "unable to authenticate"):
		hint = " (the server refused the site's [git] ssh_key_file)"
	}
	// Servers' answers may span lines (an HTTP body): a reason is one line.
	text := strings.Join(strings.Fields(fmt.Sprintf("push to %s: %s%s", redact(p.url), msg, hint)), " ")
	return &pushError{text: text, err: err}
}

// pushError is a push's error as one line of text, wrapping the cause.
type pushError struct {
	text string
	err  error
}

func (e *pushError) Error() string { return e.text }
func (e *pushError) Unwrap() error { return e.err }

// round is one attempt: read the remote's heads, fetch them if they are
// new here, rebase, send. moved reports that the remote refused because a
// branch moved since it was read.
func (p *pusher) round(ctx context.Context) (res PushResult, moved bool, err error) {
	sess, refs, err := p.session(ctx)
	if err != nil {
		return res, false, err
	}
	defer func() {
		if sess == nil { // closed, and a new one could not be opened
			return
		}
		if cerr := sess.Close(); cerr != nil && err == nil && !moved {
			err = cerr
		}
	}()
	tipT, tipC := refs[p.target], plumbing.ZeroHash
	if p.conflict != "" {
		tipC = refs[p.conflict]
	}
	if len(p.missing(tipT, tipC)) > 0 {
		// Other sites pushed: fetch their commits first, then read the
		// remote's heads again.
		if err := p.fetch(ctx, tipT, tipC); err != nil {
			return res, false, err
		}
		closed := sess.Close()
		sess = nil
		if closed != nil {
			return res, false, closed
		}
		if sess, refs, err = p.session(ctx); err != nil {
			return res, false, err
		}
		tipT = refs[p.target]
		if p.conflict != "" {
			tipC = refs[p.conflict]
		}
		if len(p.missing(tipT, tipC)) > 0 {
			return res, true, nil // moved again, already
		}
	}
	pl, err := p.plan(ctx, tipT, tipC)
	if err != nil {
		return res, false, err
	}
	if len(pl.commands) > 0 {
		moved, err = p.send(ctx, sess, pl)
		if err != nil || moved {
			return res, moved, err
		}
	}
	res.Commits, res.Sent = pl.results, pl.sent
	return res, false, p.settle(pl, tipT, tipC)
}

// session opens a receive-pack session and reads the remote's branches.
func (p *pusher) session(ctx context.Context) (transport.ReceivePackSession, map[plumbing.ReferenceName]plumbing.Hash, error) {
	ep, err := transport.NewEndpoint(p.url)
	if err != nil {
		return nil, nil, err
	}
	ep.CaBundle = p.ca
	cli, err := client.NewClient(ep)
	if err != nil {
		return nil, nil, err
	}
	sess, err := cli.NewReceivePackSession(ep, p.auth)
	if err != nil {
		return nil, nil, err
	}
	ar, err := sess.AdvertisedReferencesContext(remoteCtx(ctx, p.url))
	if err != nil {
		sess.Close()
		return nil, nil, err
	}
	p.caps = ar.Capabilities
	refs := map[plumbing.ReferenceName]plumbing.Hash{}
	for name, h := range ar.References {
		if strings.HasPrefix(name, "refs/heads/") {
			refs[plumbing.ReferenceName(name)] = h
		}
	}
	return sess, refs, nil
}

// missing lists the remote heads the clone lacks.
func (p *pusher) missing(tips ...plumbing.Hash) []plumbing.Hash {
	var out []plumbing.Hash
	for _, h := range tips {
		if !h.IsZero() && p.c.repo.Storer.HasEncodedObject(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

// fetch fetches the target and conflict branches, those whose heads
// (tips, in that order) the remote has, into their remote-tracking refs.
func (p *pusher) fetch(ctx context.Context, tips ...plumbing.Hash) error {
	var specs []config.RefSpec
	for i, b := range []plumbing.ReferenceName{p.target, p.conflict} {
		if b != "" && !tips[i].IsZero() {
			specs = append(specs, trackingSpec(b))
		}
	}
	err := p.c.repo.FetchContext(remoteCtx(ctx, p.url), &git.FetchOptions{RemoteName: origin, RefSpecs: specs, Auth: p.auth, CABundle: p.ca})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	return nil
}

func trackingSpec(branch plumbing.ReferenceName) config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s", branch, plumbing.NewRemoteReferenceName(origin, branch.Short())))
}

// plan is what a round sends: the ref updates, the objects, and where
// each of the clone's commits ends up.
type plan struct {
	commands []*packp.Command
	objects  []plumbing.Hash
	// full: the objects are those the new heads reach that the remote's
	// heads, as the clone knows them, do not (a branch new on the remote,
	// whose base the remote may lack).
	full    bool
	results []Pushed
	sent    int
}

// chain is a line of new commits on a remote branch.
type chain struct {
	branch   plumbing.ReferenceName
	old      plumbing.Hash // the remote's head; zero when the branch is new
	tip      plumbing.Hash // the head after the new commits
	tree     plumbing.Hash // tip's tree
	ours     bool          // a change wins over the remote's on a conflict
	conflict bool          // the conflict branch
}

// plan rebases the outbox onto the remote's heads tipT (the target) and
// tipC (the conflict branch).
func (p *pusher) plan(ctx context.Context, tipT, tipC plumbing.Hash) (*plan, error) {
	queue, mark, err := p.queue()
	if err != nil {
		return nil, err
	}
	found, err := p.search(tipT, tipC, queue, mark)
	if err != nil {
		return nil, err
	}
	done := map[string]Pushed{}
	for _, f := range found {
		done[f.Local] = f
	}
	out := &plan{full: tipT.IsZero()}
	ow := newObjectWriter(p.c)
	sent := map[plumbing.Hash]bool{}
	send := func(h plumbing.Hash) {
		if !sent[h] {
			sent[h] = true
			out.objects = append(out.objects, h)
		}
	}
	var base plumbing.Hash // the remote's head, or where a new branch starts
	if len(queue) > 0 && len(queue[0].ParentHashes) > 0 {
		base = queue[0].ParentHashes[0]
	}
	if !tipT.IsZero() {
		base = tipT
	}
	newChain := func(branch plumbing.ReferenceName, old plumbing.Hash, ours, conflict bool) (*chain, error) {
		ch := &chain{branch: branch, old: old, tip: old, ours: ours, conflict: conflict}
		if old.IsZero() {
			ch.tip = base
		}
		var err error
		ch.tree, err = p.treeOf(ch.tip)
		return ch, err
	}
	main, err := newChain(p.target, tipT, p.conflict == "", false)
	if err != nil {
		return nil, err
	}
	var side *chain
	for _, l := range queue {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f, ok := done[l.Hash.String()]; ok {
			out.results = append(out.results, f)
			delete(done, f.Local)
			continue
		}
		changes, err := p.changes(l)
		if err != nil {
			return nil, err
		}
		on := main
		if !main.ours {
			clean, err := p.applies(main.tree, changes, false)
			if err != nil {
				return nil, err
			}
			if !clean {
				if side == nil {
					// mao/<site> starts at the branch's head, as the remote
					// has it: one commit per conflicting run.
					if side, err = newChain(p.conflict, tipC, true, true); err != nil {
						return nil, err
					}
				}
				on = side
			}
		}
		tree, trees, err := p.edit(ctx, ow, on.tree, changes)
		if err != nil {
			return nil, err
		}
		if tree == on.tree {
			// The branch holds this change already.
			out.results = append(out.results, Pushed{Local: l.Hash.String(), Remote: on.tip.String(), Branch: on.branch.Short(), Conflict: on.conflict})
			continue
		}
		h, err := p.rebased(ctx, ow, l, tree, on.tip)
		if err != nil {
			return nil, err
		}
		on.tip, on.tree = h, tree
		send(h)
		for _, t := range trees {
			send(t)
		}
		for _, ch := range changes {
			if ch.to != nil && ch.to.Mode != filemode.Submodule {
				send(ch.to.Hash)
			}
		}
		out.sent++
		out.results = append(out.results, Pushed{Local: l.Hash.String(), Remote: h.String(), Branch: on.branch.Short(), Conflict: on.conflict})
	}
	for _, f := range found {
		if _, ok := done[f.Local]; ok {
			out.results = append(out.results, f) // a wanted commit, pushed earlier
		}
	}
	for _, ch := range []*chain{main, side} {
		if ch != nil && ch.tip != ch.old && !ch.tip.IsZero() {
			out.commands = append(out.commands, &packp.Command{Name: ch.branch, Old: ch.old, New: ch.tip})
		}
	}
	return out, nil
}

// queue lists the outbox, oldest first: the commits of the local branch
// after its pushed mark (pushedRef). A clone without a mark (made before
// mao pushed) counts the commits that the remote-tracking branch does not
// reach, among its latest maxSearch·10 commits.
func (p *pusher) queue() (queue []*object.Commit, mark *object.Commit, err error) {
	if p.head.hash.IsZero() {
		return nil, nil, nil
	}
	m, err := hashOf(p.c.repo, pushedRef(p.head.branch))
	if err != nil {
		return nil, nil, err
	}
	var known map[plumbing.Hash]bool
	if m.IsZero() {
		if known, err = p.knownByRemote(); err != nil {
			return nil, nil, err
		}
	} else if mark, err = p.c.repo.CommitObject(m); err != nil {
		return nil, nil, fmt.Errorf("read the pushed mark %s: %w", short(m), err)
	}
	for h := p.head.hash; !h.IsZero() && h != m && !known[h]; {
		co, err := p.c.repo.CommitObject(h)
		if err != nil {
			return nil, nil, fmt.Errorf("read commit %s: %w", short(h), err)
		}
		queue = append(queue, co)
		h = plumbing.ZeroHash
		if len(co.ParentHashes) > 0 {
			h = co.ParentHashes[0]
		}
	}
	slices.Reverse(queue)
	return queue, mark, nil
}

// knownByRemote is the latest commits that the remote-tracking branch of
// the clone's branch reaches.
func (p *pusher) knownByRemote() (map[plumbing.Hash]bool, error) {
	known := map[plumbing.Hash]bool{}
	tip, err := hashOf(p.c.repo, plumbing.NewRemoteReferenceName(origin, p.head.branch.Short()))
	if err != nil || tip.IsZero() {
		return known, err
	}
	co, err := p.c.repo.CommitObject(tip)
	if err != nil {
		return nil, err
	}
	iter := object.NewCommitPreorderIter(co, nil, nil)
	defer iter.Close()
	for n := 0; n < maxSearch*10; n++ {
		c, err := iter.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		known[c.Hash] = true
	}
	return known, nil
}

// key is what a commit and its rebased copy share.
func key(c *object.Commit) string {
	return fmt.Sprintf("%s\x00%s\x00%d\x00%s\x00%s\x00%d\x00%s", c.Author.Name, c.Author.Email, c.Author.When.Unix(),
		c.Committer.Name, c.Committer.Email, c.Committer.When.Unix(), c.Message)
}

// search looks for the queued and wanted commits among the remote's
// commits: a commit that an earlier Push sent, itself or rebased (same
// author, committer and message, and the remote's commit holds its
// changes), is not sent again. For the queued commits it reads the
// remote's commits back to the pushed mark (or its rebased copy); for
// wanted ones, back to at most maxSearch commits.
func (p *pusher) search(tipT, tipC plumbing.Hash, queue []*object.Commit, mark *object.Commit) ([]Pushed, error) {
	sought := map[string]*object.Commit{}
	for _, c := range queue {
		sought[key(c)] = c
	}
	var markKey string
	if mark != nil {
		markKey = key(mark)
	}
	out, err := p.find(tipT, tipC, sought, func(c *object.Commit) bool { return mark != nil && key(c) == markKey })
	if err != nil || len(p.want) == 0 {
		return out, err
	}
	wanted := map[string]*object.Commit{}
	for _, w := range p.want {
		h := plumbing.NewHash(w)
		if slices.ContainsFunc(queue, func(c *object.Commit) bool { return c.Hash == h }) {
			continue
		}
		if c, err := p.c.repo.CommitObject(h); err == nil {
			wanted[key(c)] = c
		}
	}
	more, err := p.find(tipT, tipC, wanted, func(*object.Commit) bool { return false })
	return append(out, more...), err
}

// find walks the history of each remote head, newest first, for the
// commits in sought (by key), until stop says so, maxSearch commits are
// read or all are found; it deletes what it finds from sought.
func (p *pusher) find(tipT, tipC plumbing.Hash, sought map[string]*object.Commit, stop func(*object.Commit) bool) ([]Pushed, error) {
	var out []Pushed
	for _, b := range []struct {
		branch   plumbing.ReferenceName
		tip      plumbing.Hash
		conflict bool
	}{{p.target, tipT, false}, {p.conflict, tipC, true}} {
		if b.tip.IsZero() || len(sought) == 0 {
			continue
		}
		co, err := p.c.repo.CommitObject(b.tip)
		if err != nil {
			return nil, fmt.Errorf("read the remote's head %s: %w", short(b.tip), err)
		}
		iter := object.NewCommitPreorderIter(co, nil, nil)
		for n := 0; n < maxSearch && len(sought) > 0; n++ {
			rc, err := iter.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				iter.Close()
				return nil, err
			}
			k := key(rc)
			if l, ok := sought[k]; ok {
				same, err := p.sameChanges(l, rc)
				if err != nil {
					iter.Close()
					return nil, err
				}
				if same {
					delete(sought, k)
					out = append(out, Pushed{Local: l.Hash.String(), Remote: rc.Hash.String(), Branch: b.branch.Short(), Conflict: b.conflict})
				}
			}
			if stop(rc) {
				break
			}
		}
		iter.Close()
	}
	return out, nil
}

// sameChanges reports whether the remote commit rc holds every change of
// the local commit l.
func (p *pusher) sameChanges(l, rc *object.Commit) (bool, error) {
	if l.Hash == rc.Hash {
		return true, nil
	}
	changes, err := p.changes(l)
	if err != nil {
		return false, err
	}
	return p.applies(rc.TreeHash, changes, true)
}

// change is one path that a commit changed: its entry before and after
// (nil when absent).
type change struct {
	path     string
	from, to *object.TreeEntry
}

// changes are the paths that c changed against its first parent. Only
// the trees whose hashes differ are read: a run's few new files in a
// repository of many directories cost a few trees, not every directory
// (go-git's DiffTree reads every subtree of two trees it compares, to
// count their entries).
func (p *pusher) changes(c *object.Commit) ([]change, error) {
	var from plumbing.Hash
	if len(c.ParentHashes) > 0 {
		var err error
		if from, err = p.treeOf(c.ParentHashes[0]); err != nil {
			return nil, err
		}
	}
	var out []change
	return out, p.diffTrees(from, c.TreeHash, "", &out)
}

// diffTrees appends to out the files (and links and submodules) that
// differ between the trees from and to (zero or emptyTree for none), under
// dir; a directory added or removed counts as each file in it.
func (p *pusher) diffTrees(from, to plumbing.Hash, dir string, out *[]change) error {
	if from == to {
		return nil
	}
	a, err := p.treeObject(from)
	if err != nil {
		return err
	}
	b, err := p.treeObject(to)
	if err != nil {
		return err
	}
	entries := func(t *object.Tree) map[string]*object.TreeEntry {
		m := map[string]*object.TreeEntry{}
		if t != nil {
			for i := range t.Entries {
				m[t.Entries[i].Name] = &t.Entries[i]
			}
		}
		return m
	}
	ea, eb := entries(a), entries(b)
	names := make([]string, 0, len(ea)+len(eb))
	for name := range ea {
		names = append(names, name)
	}
	for name := range eb {
		if ea[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		fa, fb := ea[name], eb[name]
		if sameEntry(fa, fb) {
			continue
		}
		path := name
		if dir != "" {
			path = dir + "/" + name
		}
		dirA, dirB := fa != nil && fa.Mode == filemode.Dir, fb != nil && fb.Mode == filemode.Dir
		var err error
		switch {
		case dirA && dirB:
			err = p.diffTrees(fa.Hash, fb.Hash, path, out)
		case dirA && fb != nil:
			// A file where a directory was: one change of the path, from
			// the directory as it was, so that it applies only where the
			// directory is still so.
			*out = append(*out, change{path: path, from: fa, to: fb})
		case dirA:
			err = p.diffTrees(fa.Hash, plumbing.ZeroHash, path, out)
		case dirB:
			if fa != nil { // a directory where a file was
				*out = append(*out, change{path: path, from: fa})
			}
			err = p.diffTrees(plumbing.ZeroHash, fb.Hash, path, out)
		default:
			*out = append(*out, change{path: path, from: fa, to: fb})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applies reports whether changes apply cleanly to tree: at each path the
// tree holds what the change started from, or what it ends with. With
// done, only the second counts: the tree holds the changes.
func (p *pusher) applies(tree plumbing.Hash, changes []change, done bool) (bool, error) {
	t, err := p.treeObject(tree)
	if err != nil {
		return false, err
	}
	for _, ch := range changes {
		cur, err := p.entryAt(t, ch.path)
		if err != nil {
			return false, err
		}
		if sameEntry(cur, ch.to) || !done && sameEntry(cur, ch.from) {
			continue
		}
		return false, nil
	}
	return true, nil
}

// entryAt is the entry at path in tree t (nil for the empty tree), or nil
// when there is none: no such name, or a part of the path that is not a
// directory (a file where the path goes on).
func (p *pusher) entryAt(t *object.Tree, path string) (*object.TreeEntry, error) {
	for t != nil {
		first, rest, deeper := strings.Cut(path, "/")
		var e *object.TreeEntry
		for i := range t.Entries {
			if t.Entries[i].Name == first {
				e = &t.Entries[i]
				break
			}
		}
		if e == nil || !deeper {
			return e, nil
		}
		if e.Mode != filemode.Dir {
			return nil, nil
		}
		var err error
		if t, err = p.treeObject(e.Hash); err != nil {
			return nil, err
		}
		path = rest
	}
	return nil, nil
}

func sameEntry(a, b *object.TreeEntry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Mode == b.Mode && a.Hash == b.Hash
}

func (p *pusher) treeObject(h plumbing.Hash) (*object.Tree, error) {
	if h.IsZero() || h == emptyTree {
		return nil, nil
	}
	return p.c.repo.TreeObject(h)
}

// treeOf is the tree of commit h; the empty tree for none.
func (p *pusher) treeOf(h plumbing.Hash) (plumbing.Hash, error) {
	if h.IsZero() {
		return emptyTree, nil
	}
	co, err := p.c.repo.CommitObject(h)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read commit %s: %w", short(h), err)
	}
	return co.TreeHash, nil
}

// edit writes the tree that is tree with changes made, and returns it and
// the trees it wrote (those on the changed paths).
func (p *pusher) edit(ctx context.Context, ow *objectWriter, tree plumbing.Hash, changes []change) (plumbing.Hash, []plumbing.Hash, error) {
	set := make(map[string]*object.TreeEntry, len(changes))
	for _, ch := range changes {
		set[ch.path] = ch.to
	}
	var written []plumbing.Hash
	h, err := p.editDir(ctx, ow, tree, set, &written)
	return h, written, err
}

// editDir writes directory tree with the changes in set (paths relative
// to it; a nil entry deletes) and returns its hash.
func (p *pusher) editDir(ctx context.Context, ow *objectWriter, tree plumbing.Hash, set map[string]*object.TreeEntry,
	written *[]plumbing.Hash) (plumbing.Hash, error) {
	items := map[string]treeItem{}
	t, err := p.treeObject(tree)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if t != nil {
		for _, e := range t.Entries {
			items[e.Name] = treeItem{e.Name, e.Mode, e.Hash}
		}
	}
	subs := map[string]map[string]*object.TreeEntry{}
	for p, e := range set {
		first, rest, deeper := strings.Cut(p, "/")
		if !deeper {
			if e == nil {
				delete(items, first)
			} else {
				items[first] = treeItem{first, e.Mode, e.Hash}
			}
			continue
		}
		if subs[first] == nil {
			subs[first] = map[string]*object.TreeEntry{}
		}
		subs[first][rest] = e
	}
	for name, sub := range subs {
		under := plumbing.ZeroHash
		if it, ok := items[name]; ok && it.mode == filemode.Dir {
			under = it.hash
		}
		h, err := p.editDir(ctx, ow, under, sub, written)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h == emptyTree {
			delete(items, name)
		} else {
			items[name] = treeItem{name, filemode.Dir, h}
		}
	}
	list := make([]treeItem, 0, len(items))
	for _, it := range items {
		list = append(list, it)
	}
	content := encodeTree(list)
	h := plumbing.ComputeHash(plumbing.TreeObject, content)
	if h == tree {
		return h, nil
	}
	if !ow.has(h) {
		if _, err := ow.writeBytes(ctx, plumbing.TreeObject, content); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("store a tree: %w", err)
		}
	}
	*written = append(*written, h)
	return h, nil
}

// rebased writes the copy of l with tree on parent, keeping l's author,
// committer and message, and returns its hash.
func (p *pusher) rebased(ctx context.Context, ow *objectWriter, l *object.Commit, tree, parent plumbing.Hash) (plumbing.Hash, error) {
	if tree == l.TreeHash && len(l.ParentHashes) == 1 && parent == l.ParentHashes[0] {
		return l.Hash, nil // on the same parent: the commit itself
	}
	co := &object.Commit{Author: l.Author, Committer: l.Committer, Message: l.Message, TreeHash: tree, Encoding: l.Encoding,
		ExtraHeaders: l.ExtraHeaders}
	if !parent.IsZero() {
		co.ParentHashes = []plumbing.Hash{parent}
	}
	obj := &plumbing.MemoryObject{}
	if err := co.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := ow.write(ctx, plumbing.CommitObject, obj.Size(), rd)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store a rebased commit: %w", err)
	}
	return h, nil
}

// send sends the plan's objects and ref updates. moved reports that the
// remote refused because a branch moved meanwhile.
func (p *pusher) send(ctx context.Context, sess transport.ReceivePackSession, pl *plan) (moved bool, err error) {
	objects := pl.objects
	if pl.full {
		// A new branch: every object its commits reach that the remote's
		// branches, as the clone knows them, do not.
		var haves []plumbing.Hash
		if refs, err := p.c.repo.References(); err == nil {
			_ = refs.ForEach(func(ref *plumbing.Reference) error {
				if ref.Name().IsRemote() && ref.Type() == plumbing.HashReference {
					haves = append(haves, ref.Hash())
				}
				return nil
			})
		}
		var news []plumbing.Hash
		for _, c := range pl.commands {
			news = append(news, c.New)
		}
		if objects, err = revlist.Objects(p.c.repo.Storer, news, haves); err != nil {
			return false, fmt.Errorf("list the objects to send: %w", err)
		}
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(p.caps)
	if p.caps.Supports(capability.Atomic) {
		_ = req.Capabilities.Set(capability.Atomic)
	}
	req.Commands = pl.commands
	rd, wr := io.Pipe()
	req.Packfile = rd
	encoded := make(chan error, 1)
	go func() {
		_, err := packfile.NewEncoder(wr, p.c.repo.Storer, !p.caps.Supports(capability.OFSDelta)).Encode(objects, 10)
		encoded <- wr.CloseWithError(err)
	}()
	rs, err := sess.ReceivePack(remoteCtx(ctx, p.url), req)
	if err != nil && (rs == nil || rs.UnpackStatus != "ok" || len(rs.CommandStatuses) == 0) {
		rd.CloseWithError(err)
		<-encoded
		return false, err
	}
	if err := <-encoded; err != nil {
		return false, fmt.Errorf("send objects: %w", err)
	}
	if rs == nil || rs.Error() == nil {
		return false, nil
	}
	for _, cs := range rs.CommandStatuses {
		if cs.Error() != nil && !movedStatus(cs.Status) {
			return false, fmt.Errorf("the remote refused to update %s: %s", cs.ReferenceName.Short(), cs.Status)
		}
	}
	// The branch moved since it was read: another site pushed first.
	return true, nil
}

// movedStatus reports whether a remote's refusal of a ref update says that
// the ref moved since it was read, which a new attempt may get past.
func movedStatus(status string) bool {
	for _, s := range []string{"non-fast-forward", "fetch first", "failed to update ref", "failed to lock", "cannot lock ref", "stale info", "atomic transaction failed"} {
		if strings.Contains(status, s) {
			return true
		}
	}
	return false
}

// settle records a round that left nothing to send, or whose push
// landed: the remote-tracking refs at the remote's heads and the pushed
// mark at the branch's head.
func (p *pusher) settle(pl *plan, tipT, tipC plumbing.Hash) error {
	tips := map[plumbing.ReferenceName]plumbing.Hash{p.target: tipT}
	if p.conflict != "" {
		tips[p.conflict] = tipC
	}
	for _, c := range pl.commands {
		tips[c.Name] = c.New
	}
	for name, h := range tips {
		if h.IsZero() {
			continue
		}
		if err := p.c.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewRemoteReferenceName(origin, name.Short()), h)); err != nil {
			return err
		}
	}
	if p.head.hash.IsZero() {
		return nil
	}
	return markPushed(p.c.repo, p.head.branch, p.head.hash)
}

// encodeTree is the content of the tree object of items, in git's order:
// by name, a directory's name as if it ended in '/'.
func encodeTree(items []treeItem) []byte {
	slices.SortFunc(items, func(a, b treeItem) int { return strings.Compare(sortKey(a), sortKey(b)) })
	var buf []byte
	for _, it := range items {
		buf = fmt.Appendf(buf, "%o %s", uint32(it.mode), it.name)
		buf = append(buf, 0)
		buf = append(buf, it.hash[:]...)
	}
	return buf
}
