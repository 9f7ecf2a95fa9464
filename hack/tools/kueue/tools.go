//go:build tools

// Package tools pins Kueue (its manager and CRDs) for Verdant's Kueue tests.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
