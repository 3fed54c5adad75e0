// Package etcdembed runs the single-member etcd server that an orchestrator
// starts when config.ini names no external endpoints: mao's zero-config
// default. Tests use it too, so every test talks to a real etcd.
//
// It owns the server's lifecycle only; it must not know mao's key layout.
package etcdembed
