// Package voters keeps the voting members of the federation's etcd
// cluster: an odd number of them, at most [federation] max_voters, the
// other members learners, which hold every record and serve their own
// site but do not count towards quorum.
//
//   - Policy is the rule, as pure functions of the members' state: how
//     many voters the federation aims at (Target), whether a learner may
//     promote itself now (MayPromote), what a new member will be
//     (Forecast, for add-site), who takes a leaving voter's place
//     (PlanLeave), and the warnings federation status shows (Annotate).
//   - Keeper is the loop every site with an embedded member runs (a
//     witness too): it promotes its own member when the policy lets it
//     (a joining site, or a learner when a voter has left or was
//     removed), and points the site's etcd client at the voting members.
//     Each promotion is decided under a lock in etcd (the store's
//     voters-lock), with the members read again after taking it, so two
//     learners never both take the one vote the policy allows.
//   - Keeper.Leave takes a site's member out of the cluster for good,
//     under the same lock, after promoting a learner when the voters
//     left would otherwise be none or an even number.
//
// It works through a small interface over the store and serves no HTTP.
//
// # Rules
//
// Imports from mao: only api, orchestrator/errs.
// Never links: etcd, Docker, go-git.
package voters
