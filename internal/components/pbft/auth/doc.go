// Package auth authenticates PBFT's messages. Keys derive from the run's
// seed and the cluster size (NewKeys), so a restarted replica and the test
// harness hold the same ones: an Ed25519 pair per replica, an HMAC-SHA256
// key per pair of replicas and per client and replica. In the default mode
// (MACs) the normal-case messages carry an authenticator, one 16-byte MAC
// per receiving replica over the SHA-256 of the message's signable bytes
// (wire.Signable), as in Castro and Liskov's PBFT: a MAC is cheap, but it
// convinces only its receiver, who could have computed it as well, so it
// cannot be passed on as proof. Hence the kinds that are passed on
// (protocol.Kind.Signed: checkpoints, which a view change carries as the
// proof of its stable checkpoint; view changes, which a new view carries;
// new views; state transfer) are signed, and Verify checks the nested
// messages' signatures too. Mode Signatures signs every replica message,
// for the comparison benchmark. Clients hold MAC keys only: requests carry
// an authenticator for every replica, replies one MAC for their client.
package auth
