//go:build tools

// Package tools pins helm for Verdant's chart tests.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
