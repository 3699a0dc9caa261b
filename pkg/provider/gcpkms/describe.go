package gcpkms

import (
	"context"
	"errors"
	"path"
	"sort"
	"strings"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// versionState maps a Cloud KMS version state to cmekctl's.
func versionState(s kmspb.CryptoKeyVersion_CryptoKeyVersionState) provider.State {
	switch s {
	case kmspb.CryptoKeyVersion_ENABLED:
		return provider.StateEnabled
	case kmspb.CryptoKeyVersion_DISABLED:
		return provider.StateDisabled
	case kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, kmspb.CryptoKeyVersion_PENDING_EXTERNAL_DESTRUCTION:
		return provider.StatePendingDeletion
	case kmspb.CryptoKeyVersion_DESTROYED:
		return provider.StateDestroyed
	}
	// PENDING_GENERATION, PENDING_IMPORT, IMPORT_FAILED,
	// GENERATION_FAILED, EXTERNAL_DESTRUCTION_FAILED: the raw state is in
	// Details.
	return provider.StateUnknown
}

// keyState derives the state of the key as a whole from its primary and
// its versions:
//   - ENABLED when the primary version is enabled;
//   - DESTROYED when every version is destroyed;
//   - PENDING_DELETION when every version is scheduled for destruction or
//     destroyed, and some are scheduled;
//   - DISABLED otherwise (including a key with no version).
func keyState(primary *kmspb.CryptoKeyVersion, versions []*kmspb.CryptoKeyVersion) provider.State {
	if primary != nil && primary.GetState() == kmspb.CryptoKeyVersion_ENABLED {
		return provider.StateEnabled
	}
	if len(versions) == 0 {
		return provider.StateDisabled
	}
	destroyed, scheduled := 0, 0
	for _, v := range versions {
		switch versionState(v.GetState()) {
		case provider.StateDestroyed:
			destroyed++
		case provider.StatePendingDeletion:
			scheduled++
		}
	}
	switch {
	case destroyed == len(versions):
		return provider.StateDestroyed
	case destroyed+scheduled == len(versions):
		return provider.StatePendingDeletion
	}
	return provider.StateDisabled
}

// Describe reads the key (GetCryptoKey) and its versions
// (ListCryptoKeyVersions). It never decrypts anything.
func (k *Key) Describe(ctx context.Context) (provider.KeyState, error) {
	const op = "describe"
	var ck *kmspb.CryptoKey
	var versions []*kmspb.CryptoKeyVersion
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		var err error
		ck, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.name}, noRetry)
		if err != nil {
			return err
		}
		versions, err = listVersions(ctx, c, k.name)
		return err
	})
	if err != nil {
		// A missing key is a state, as the other providers report it (so
		// a caller may create it); it proves nothing about destruction.
		var pe *provider.Error
		if errors.As(err, &pe) && pe.Code == "NOT_FOUND" {
			return provider.KeyState{URI: k.uri, Provider: Scheme, State: provider.StateNotFound,
				Details: map[string]string{"code": pe.Code, "message": pe.Message}}, nil
		}
		return provider.KeyState{}, err
	}
	return k.state(ck, versions), nil
}

func listVersions(ctx context.Context, c *kms.KeyManagementClient, name string) ([]*kmspb.CryptoKeyVersion, error) {
	var out []*kmspb.CryptoKeyVersion
	it := c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: name}, noRetry)
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(out[i].GetName(), out[j].GetName()) })
	return out, nil
}

// versionLess orders version names by their number.
func versionLess(a, b string) bool {
	x, y := path.Base(a), path.Base(b)
	if len(x) != len(y) {
		return len(x) < len(y)
	}
	return x < y
}

func (k *Key) state(ck *kmspb.CryptoKey, versions []*kmspb.CryptoKeyVersion) provider.KeyState {
	st := provider.KeyState{
		URI:      k.uri,
		Provider: Scheme,
		Details:  map[string]string{},
	}
	primary := ck.GetPrimary()
	if primary != nil {
		st.PrimaryVersion = primary.GetName()
		// The primary in GetCryptoKey and in the listing are the same
		// version; prefer the listing's state, read second.
		for _, v := range versions {
			if v.GetName() == primary.GetName() {
				primary = v
			}
		}
	}
	st.State = keyState(primary, versions)
	var raw []string
	var reimport []string
	for _, v := range versions {
		vs := provider.VersionState{ID: v.GetName(), State: versionState(v.GetState())}
		if t := v.GetCreateTime(); t != nil {
			vs.Created = t.AsTime().UTC()
		}
		st.Versions = append(st.Versions, vs)
		raw = append(raw, path.Base(v.GetName())+"="+v.GetState().String())
		if v.GetState() == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED && v.GetDestroyTime() != nil {
			if t := v.GetDestroyTime().AsTime().UTC(); t.After(st.DeletionDate) {
				st.DeletionDate = t
			}
		}
		if v.GetState() == kmspb.CryptoKeyVersion_DESTROYED && v.GetReimportEligible() {
			reimport = append(reimport, path.Base(v.GetName()))
		}
	}
	if len(reimport) > 0 {
		st.Recoverable = true
		st.RecoverableReason = "destroyed version(s) " + strings.Join(reimport, ", ") +
			" are reimport_eligible: the original key material can be imported again (ImportCryptoKeyVersion), which brings them back"
	}
	if len(raw) > 0 {
		st.Details["version_states"] = strings.Join(raw, ",")
	}
	if p := ck.GetPurpose(); p != kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED {
		st.Details["purpose"] = p.String()
	}
	if d := ck.GetDestroyScheduledDuration(); d != nil {
		st.Details["destroy_scheduled_duration"] = d.AsDuration().String()
	}
	if t := ck.GetVersionTemplate(); t != nil {
		if t.GetProtectionLevel() != kmspb.ProtectionLevel_PROTECTION_LEVEL_UNSPECIFIED {
			st.Details["protection_level"] = t.GetProtectionLevel().String()
		}
		if t.GetAlgorithm() != kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED {
			st.Details["algorithm"] = t.GetAlgorithm().String()
		}
	}
	if rp := ck.GetRotationPeriod(); rp != nil {
		st.Details["rotation_period"] = rp.AsDuration().String()
	}
	if nr := ck.GetNextRotationTime(); nr != nil {
		st.Details["next_rotation_time"] = nr.AsTime().UTC().Format(time.RFC3339)
	}
	if len(st.Details) == 0 {
		st.Details = nil
	}
	return st
}
