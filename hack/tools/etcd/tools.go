//go:build tools

// Package tools pins etcd for Verdant's test control plane.
package tools

import _ "go.etcd.io/etcd/server/v3"
