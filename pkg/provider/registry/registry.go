// Package registry builds the map from KMS URI scheme to provider, in one place.
package registry

import (
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// Default returns every provider cmekctl ships.
func Default() provider.Registry {
	return provider.Registry{
		filekms.Scheme:  filekms.Open,
		"aws-kms":       awskms.Open,
		"gcp-kms":       gcpkms.Open,
		"vault-transit": vaulttransit.Open,
		// vault-keymgmt resolves to the aws-kms or gcp-kms key it names.
		"vault-keymgmt": vaulttransit.KeyMgmtOpener(func(raw string) (provider.Key, error) { return Default().Open(raw) }),
	}
}
