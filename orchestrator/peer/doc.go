// Package peer is the API that sites offer each other, over mutual TLS
// with the federation's certificates (package pki), on a listener of its
// own ([federation] listen), apart from the API that people use:
//
//   - a new site joins: it presents a one-time join token (issued by
//     Issuer.AddSite for an administrator's maoctl federation add-site) and
//     gets the federation's CAs, its etcd user and its etcd member, without
//     anyone copying key files; it checks first that the site answering is
//     the federation's (the token pins the CA). AddSite says whether the
//     new site's member will vote (the voter policy's forecast, through
//     the Voters interface) and refuses the name of a member;
//   - a site reads the log of a run another site holds: Client.OpenLogs
//     calls that site with its own certificate, never a user's token; the
//     server answers only a caller whose certificate names a live site, and
//     only about runs it holds, so a request never travels on (the hop
//     header says where it came from);
//   - Issuer.Credentials gives a collaborator a read-only certificate for
//     etcd.
//
// It works through small interfaces over the store and the site's logs.
//
// # Rules
//
// Imports from mao: only api, toolspec, orchestrator/errs, orchestrator/pki.
// Never links: etcd, Docker, go-git.
package peer
