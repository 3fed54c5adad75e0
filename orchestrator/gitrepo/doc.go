// Package gitrepo manages a site's local clones of git repositories: the
// data repository of each tool (mounted read-write into the tool's
// container) and the registered datasets. It clones and fast-forwards them
// (Sync), re-cloning a directory whose URL changed and keeping the old clone
// aside rather than deleting it, records a run's output as a commit (Commit),
// throws away a failed run's output (Discard) and sends the commits to the
// remote (Push). It never deletes commits and never forces a push.
//
// # A clone is opened only as itself
//
// A clone is two directories: its work tree dir, which is all a tool's
// container gets mounted, and its git directory GitDir(dir), the hidden
// sibling .<name>.git, which no container sees. So a tool can neither
// rewrite the repository's config, HEAD, refs or objects nor redirect
// them; whatever it leaves in the work tree is hostile input:
//
//   - a path named .git anywhere (or a name other systems read as .git:
//     .GIT, git~1, ".git."), a fifo, socket or device, a symbolic link
//     named .gitmodules, paths deeper than 256 directories or longer than
//     4096 bytes: Commit refuses the output (*OutputError), the runner
//     fails the run and Discard removes it;
//   - a symbolic link is committed as a link (its target, as git does)
//     and never followed: not when reading, not when deleting, not when
//     restoring a tracked file in its place;
//   - a .gitignore that is a link is not read, and one larger than 1 MiB,
//     or that brings more than 10,000 patterns into effect, is refused;
//     Discard follows HEAD's .gitignore files, not those the run wrote, so
//     a failed run cannot hide its output from it.
//
// The work tree is walked through os.Root, one directory at a time,
// opening nothing but directories and regular files, each checked to be
// the one that was listed; go-git gets the work tree and the git directory
// as go-billy's bound OS file systems, which resolve nothing outside them.
//
// A clone of the old layout (a .git directory inside the work tree, which
// earlier versions made) is moved to the new one the first time any call
// meets it, keeping every commit, including those never pushed. A .git
// that is a file (a "gitdir:" redirect), a symbolic link, or a directory
// holding a link, a special file, objects/info/alternates or a commondir
// is refused, naming the reason, and nothing is touched.
//
// # Staging
//
// Commit finds what changed without go-git's Status: it walks the work
// tree comparing each file with the index by size, mode, mtime, ctime and
// inode, and reads only new or changed files (and, as git, those "racily
// clean", no older than the index). It streams their content into loose
// objects (zlib level 1, as git), never holding a file in memory, writes
// the trees of the directories that changed, the commit, the index, and
// last moves the branch. The index is only a cache: changes are measured
// against HEAD, so a file staged by someone else counts too.
//
// Options.MaxOutputBytes and MaxOutputFiles bound what one Commit reads:
// beyond either (counted while walking, before anything is read) it
// refuses the output and nothing is written.
//
// Commit and Discard check their context between files and within long
// copies. When it ends, they return its error; the branch stays where it
// was. Commit asks its caller, last, whether to keep the commit (its keep
// function, called just before the branch moves): a no leaves the branch
// where it was, as an ended context does. Each marks the clone (mao-output-pending in its git directory) when
// it starts and clears the mark when it succeeds, so the next Sync finds a
// clone whose output was neither committed nor discarded and discards it
// first: a failed or interrupted run's output never reaches a later commit.
//
// It talks to git only through go-git (and its own object and index
// writing) and never runs the git binary itself. Note that go-git serves
// file:// URLs by running git-upload-pack, so a site that uses file://
// remotes needs git installed.
//
// # Pushing
//
// The clone is its own outbox: the commits of its branch after the ref
// refs/mao/pushed/<branch> (the pushed mark) are not on the remote yet.
// Sync sets the mark to the remote's head whenever it moves the branch
// there (a clone, a fast-forward); Push sets it to the branch's head once
// it has sent what came after the mark. Push reads the remote's heads
// (one receive-pack connection), fetches them only when the clone lacks
// them, and rebases the outbox onto the remote's head in the git directory
// alone, commit by commit, writing only the trees on the changed paths;
// it sends those objects in one pack, never a forced update. A commit that
// changed a path the remote changed to other content goes to a conflict
// branch instead (mao/<site>, from the remote's head). When the remote
// answers that its branch moved meanwhile, Push waits a random while and
// tries again, a bounded number of times. A push that landed but was cut
// short before it set the mark is found again on the remote (the same
// author, committer and message, and the changes), and not sent twice.
// The work tree and the index are never touched by Push: Sync moves a
// clone whose every commit is on the remote to the remote's head, other
// sites' files included, before the next run, while a clone with unpushed
// commits stays on them (a remote that does not answer, too: Sync then
// works on the clone as it is, with a note).
//
// Credentials come from the site (LoadAuth: an SSH key and known_hosts,
// HTTPS passwords in git's credential-store format, a CA bundle), never
// from a URL; errors name remotes without credentials and hold no secret.
//
// Sync, Commit, Discard and Push take a lock of the clone's git directory
// for as long as they work on it, so a Push may run while the work tree is
// used by a run. Beyond that a Repos does no locking: callers must
// serialise the runs that use one work tree (the orchestrator holds a
// per-directory lock). Calls on different directories may run
// concurrently.
//
// The package must not import mao's registry, scheduler, Docker or API
// packages: it knows directories and URLs, not tools or runs.
//
// # Rules
//
// Imports from mao: only internal/dirlock, orchestrator/container.
// Never links: etcd, Docker, api, toolspec.
package gitrepo
