package cloud

import (
	"strings"
	"time"
)

// KeyType is the spec's CMEKKeyType.
type KeyType string

const (
	KeyTypeAWSKMS        KeyType = "AWS_KMS"
	KeyTypeGCPCloudKMS   KeyType = "GCP_CLOUD_KMS"
	KeyTypeNullKMS       KeyType = "NULL_KMS"
	KeyTypeAzureKeyVault KeyType = "AZURE_KEY_VAULT"
)

// Status is the spec's CMEKStatus, for a cluster, a region or a key.
type Status string

const (
	StatusDisabled      Status = "DISABLED"
	StatusDisabling     Status = "DISABLING"
	StatusDisableFailed Status = "DISABLE_FAILED"
	StatusEnabled       Status = "ENABLED"
	StatusEnabling      Status = "ENABLING"
	StatusEnableFailed  Status = "ENABLE_FAILED"
	StatusRotating      Status = "ROTATING"
	StatusRotateFailed  Status = "ROTATE_FAILED"
	StatusRevoked       Status = "REVOKED"
	StatusRevoking      Status = "REVOKING"
	StatusRevokeFailed  Status = "REVOKE_FAILED"
)

// Statuses lists every CMEKStatus of the spec, in the spec's order.
var Statuses = []Status{
	StatusDisabled, StatusDisabling, StatusDisableFailed,
	StatusEnabled, StatusEnabling, StatusEnableFailed,
	StatusRotating, StatusRotateFailed,
	StatusRevoked, StatusRevoking, StatusRevokeFailed,
}

// Failed reports whether s is one of the *_FAILED statuses.
func (s Status) Failed() bool { return strings.HasSuffix(string(s), "_FAILED") }

// Settled reports whether s is ENABLED, DISABLED or REVOKED: the statuses
// Wait waits for.
func (s Status) Settled() bool {
	return s == StatusEnabled || s == StatusDisabled || s == StatusRevoked
}

// KeySpec is the spec's CMEKKeySpecification. For AWS_KMS, URI is the key
// ARN and AuthPrincipal an IAM role ARN that trusts the cluster's account;
// for GCP_CLOUD_KMS, URI is projects/P/locations/L/keyRings/R/cryptoKeys/K
// (no version) and AuthPrincipal a service account email.
type KeySpec struct {
	Type          KeyType `json:"type,omitempty"`
	URI           string  `json:"uri,omitempty"`
	AuthPrincipal string  `json:"auth_principal,omitempty"`
}

// RegionSpec is the spec's CMEKRegionSpecification.
type RegionSpec struct {
	Region  string  `json:"region"`
	KeySpec KeySpec `json:"key_spec"`
}

// ClusterInfo is the spec's CMEKClusterInfo: what every CMEK call returns.
type ClusterInfo struct {
	Status      Status       `json:"status,omitempty"`
	RegionInfos []RegionInfo `json:"region_infos,omitempty"`
}

// RegionInfo is the spec's CMEKRegionInfo: a region's status and its
// current and past keys.
type RegionInfo struct {
	Region   string    `json:"region"`
	Status   Status    `json:"status,omitempty"`
	KeyInfos []KeyInfo `json:"key_infos,omitempty"`
}

// KeyInfo is the spec's CMEKKeyInfo: one key of a region and its status.
type KeyInfo struct {
	Spec        KeySpec   `json:"spec"`
	Status      Status    `json:"status,omitempty"`
	UserMessage string    `json:"user_message,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// Backup is the spec's BackupSummary: a managed backup and the point in
// time it restores to.
type Backup struct {
	ID       string    `json:"id"`
	AsOfTime time.Time `json:"as_of_time"`
}

// Region returns the info of the named region, or nil.
func (c *ClusterInfo) Region(name string) *RegionInfo {
	if c == nil {
		return nil
	}
	for i := range c.RegionInfos {
		if c.RegionInfos[i].Region == name {
			return &c.RegionInfos[i]
		}
	}
	return nil
}

// Settled reports whether every region is ENABLED, DISABLED or REVOKED (or,
// when the API lists no region, whether the cluster's status is).
func (c *ClusterInfo) Settled() bool {
	if c == nil {
		return false
	}
	if len(c.RegionInfos) == 0 {
		return c.Status.Settled()
	}
	for _, r := range c.RegionInfos {
		if !r.Status.Settled() {
			return false
		}
	}
	return true
}

// Failure returns a *FailedError for the first region whose status is a
// *_FAILED one (or the cluster's, when no region says), or nil.
func (c *ClusterInfo) Failure(clusterID string) *FailedError {
	if c == nil {
		return nil
	}
	for _, r := range c.RegionInfos {
		if r.Status.Failed() {
			return &FailedError{ClusterID: clusterID, Region: r.Region, Status: r.Status, UserMessage: r.userMessage()}
		}
	}
	if c.Status.Failed() {
		return &FailedError{ClusterID: clusterID, Status: c.Status}
	}
	return nil
}

// Current returns the region's current key: the most recently created key
// info (the last one listed on a tie), or nil when there is none.
func (r *RegionInfo) Current() *KeyInfo {
	var cur *KeyInfo
	for i := range r.KeyInfos {
		k := &r.KeyInfos[i]
		if cur == nil || !k.CreatedAt.Before(cur.CreatedAt) {
			cur = k
		}
	}
	return cur
}

// userMessage is the message that explains the region's status: the
// user_message of a failed key, else of the current key.
func (r *RegionInfo) userMessage() string {
	for i := len(r.KeyInfos) - 1; i >= 0; i-- {
		if k := r.KeyInfos[i]; k.Status.Failed() && k.UserMessage != "" {
			return k.UserMessage
		}
	}
	if k := r.Current(); k != nil {
		return k.UserMessage
	}
	return ""
}

// EnabledAt is when CMEK was first enabled in the region: the earliest
// created_at of its key infos, or the zero time when it has none.
func (r *RegionInfo) EnabledAt() time.Time {
	var t time.Time
	for _, k := range r.KeyInfos {
		if !k.CreatedAt.IsZero() && (t.IsZero() || k.CreatedAt.Before(t)) {
			t = k.CreatedAt
		}
	}
	return t
}

// EnabledAt is when CMEK was first enabled on the cluster: the earliest
// EnabledAt of its regions, or the zero time. A managed backup whose
// as_of_time is before it was taken without CMEK.
func (c *ClusterInfo) EnabledAt() time.Time {
	var t time.Time
	if c == nil {
		return t
	}
	for i := range c.RegionInfos {
		if e := c.RegionInfos[i].EnabledAt(); !e.IsZero() && (t.IsZero() || e.Before(t)) {
			t = e
		}
	}
	return t
}
