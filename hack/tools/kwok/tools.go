//go:build tools

// Package tools pins kwok for Verdant's test control plane.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
