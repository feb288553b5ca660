// Package netutil holds the one accept helper every listener of soakd's
// components and fabric uses, so that running out of descriptors (an fds
// fault, or a real leak) slows a listener down instead of killing it.
package netutil
