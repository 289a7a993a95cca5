// Package deploy ships the default policy inside the consentd binary, so
// consentd starts with the catalog in policy.yaml when --policy is not set.
package deploy

import _ "embed"

// DefaultPolicy is the contents of deploy/policy.yaml.
//
//go:embed policy.yaml
var DefaultPolicy []byte
