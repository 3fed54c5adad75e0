// Package notify tells people about events of mao: a spike in a tool's
// output metric and its return to normal, and runs that failed, timed out,
// were lost or recovered.
//
// It owns:
//   - Event and the message Templates that render one (plain text by
//     default, Go text/template source when a site overrides them);
//   - Redact, which hides the secrets of a channel URL for logs, the API
//     and the CLI;
//   - ShoutrrrSender, which sends one message to one channel URL through
//     shoutrrr (Slack, SMTP e-mail, Teams, Telegram, Matrix, a generic
//     JSON webhook, ...);
//   - Notifier, which delivers asynchronously from a bounded queue, with
//     retries and exponential backoff, and reports each delivery's Outcome:
//     Notify never blocks and never fails its caller;
//   - DecideSpike and DecideRun, the pure decisions of which events to
//     notify given what was notified before (State), so that a lasting
//     condition is told once per cooldown.
//
// It is a leaf: it must not import etcd, Docker, git or any other package
// of mao. Where events come from and where outcomes and states are stored
// is the caller's business (package orchestrator/alerts).
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git.
package notify
