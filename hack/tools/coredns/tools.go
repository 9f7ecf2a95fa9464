//go:build tools

// Package tools pins CoreDNS, the local cluster's DNS server. Its default plugin set
// includes the kubernetes plugin, which serves Services, headless ones included.
package tools

import (
	_ "github.com/coredns/coredns"
)
