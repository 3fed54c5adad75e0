// Package store owns mao's etcd key layout and its JSON values: the tool and
// dataset registries, run records and site membership. Every write is a
// single etcd transaction, so nothing partial is ever stored, and etcd
// failures surface as ErrUnavailable.
//
// The layout is a public interface (collaborators read it with etcdctl) and
// is documented in docs/etcd-keys.md; change both together. The package must
// not import Docker or git code, and it serves no HTTP.
package store
