// Package kv is the key-value service the PBFT replicas replicate: a
// deterministic protocol.Application with put, get and cas, the semantics
// of the Raft component's store (a cas matches only a present key whose
// value equals its expect byte for byte; nil and empty are the same value),
// so the same linearizability checker checks both. Operations and results
// are encoded in binary; the snapshot is the sorted map, so every correct
// replica's checkpoint digest is the same.
package kv
