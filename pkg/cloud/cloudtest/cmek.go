package cloudtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The CMEK state machine: POST, PUT, PATCH and the GETs that settle it.

func decodeSpecs(body []byte) ([]regionSpec, error) {
	var req struct {
		RegionSpecs []regionSpec `json:"region_specs"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if len(req.RegionSpecs) == 0 {
		return nil, fmt.Errorf("region_specs is empty")
	}
	return req.RegionSpecs, nil
}

func checkKeySpec(region string, k *keySpec) string {
	if k == nil {
		return fmt.Sprintf("region %s: key_spec is required", region)
	}
	switch k.Type {
	case "AWS_KMS":
		if !strings.HasPrefix(k.URI, "arn:aws") || !strings.Contains(k.URI, ":kms:") || !strings.Contains(k.URI, ":key/") {
			return fmt.Sprintf("region %s: uri %q is not an AWS KMS key ARN", region, k.URI)
		}
		if !strings.HasPrefix(k.AuthPrincipal, "arn:aws") || !strings.Contains(k.AuthPrincipal, ":iam::") {
			return fmt.Sprintf("region %s: auth_principal %q is not an IAM role ARN", region, k.AuthPrincipal)
		}
	case "GCP_CLOUD_KMS":
		p := strings.Split(k.URI, "/")
		if len(p) != 8 || p[0] != "projects" || p[2] != "locations" || p[4] != "keyRings" || p[6] != "cryptoKeys" {
			return fmt.Sprintf("region %s: uri %q is not a GCP Cloud KMS key name (projects/P/locations/L/keyRings/R/cryptoKeys/K)", region, k.URI)
		}
		if !strings.Contains(k.AuthPrincipal, "@") {
			return fmt.Sprintf("region %s: auth_principal %q is not a service account email", region, k.AuthPrincipal)
		}
	default:
		return fmt.Sprintf("region %s: key type %q is not supported", region, k.Type)
	}
	return ""
}

func transitional(status string) bool {
	return status == "ENABLING" || status == "ROTATING" || status == "REVOKING" || status == "DISABLING"
}

func (cl *cluster) busy() bool {
	for _, st := range cl.state {
		if transitional(st.status) {
			return true
		}
	}
	return false
}

// applySpecs handles POST (enable) and PUT (enable or rotate). It returns a
// non-zero status on refusal.
func (s *Server) applySpecs(cl *cluster, method string, specs []regionSpec) (int, int, string) {
	seen := map[string]bool{}
	for _, sp := range specs {
		if _, ok := cl.state[sp.Region]; !ok {
			return http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("region %q is not a region of cluster %s (regions: %s)", sp.Region, cl.id, strings.Join(cl.regions, ", "))
		}
		if seen[sp.Region] {
			return http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("region %s is given twice", sp.Region)
		}
		seen[sp.Region] = true
		if msg := checkKeySpec(sp.Region, sp.KeySpec); msg != "" {
			return http.StatusBadRequest, codeInvalidArgument, msg
		}
	}
	if cl.busy() {
		return http.StatusServiceUnavailable, codeUnavailable, fmt.Sprintf("cluster %s is busy: a CMEK operation is in progress", cl.id)
	}
	if method == "POST" {
		for _, r := range cl.regions {
			if cl.state[r].status != "DISABLED" {
				return http.StatusBadRequest, codeFailedPrecondition, fmt.Sprintf("CMEK is already enabled for cluster %s; use PUT to update the key specs", cl.id)
			}
		}
		var missing []string
		for _, r := range cl.regions {
			if !seen[r] {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("region_specs must cover every region of cluster %s: missing %s", cl.id, strings.Join(missing, ", "))
		}
	}
	for _, sp := range specs {
		switch st := cl.state[sp.Region].status; st {
		case "DISABLED", "ENABLED", "ENABLE_FAILED", "ROTATE_FAILED":
		default:
			return http.StatusBadRequest, codeFailedPrecondition, fmt.Sprintf("region %s is %s: its key spec cannot be changed", sp.Region, st)
		}
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	for _, sp := range specs {
		st := cl.state[sp.Region]
		next := "ROTATING"
		if st.status == "DISABLED" || st.status == "ENABLE_FAILED" {
			next = "ENABLING"
		}
		st.status = next
		st.keys = append(st.keys, keyInfo{Spec: *sp.KeySpec, Status: next, CreatedAt: now, UpdatedAt: now})
	}
	cl.pending = s.polls
	return 0, 0, ""
}

func (s *Server) revoke(cl *cluster) (int, int, string) {
	if cl.busy() {
		return http.StatusServiceUnavailable, codeUnavailable, fmt.Sprintf("cluster %s is busy: a CMEK operation is in progress", cl.id)
	}
	revoked := 0
	for _, r := range cl.regions {
		switch st := cl.state[r].status; st {
		case "ENABLED", "REVOKE_FAILED":
		case "REVOKED":
			revoked++
		default:
			return http.StatusBadRequest, codeFailedPrecondition, fmt.Sprintf("CMEK is not enabled for cluster %s: region %s is %s", cl.id, r, st)
		}
	}
	if revoked == len(cl.regions) {
		return http.StatusBadRequest, codeFailedPrecondition, fmt.Sprintf("CMEK is already revoked for cluster %s", cl.id)
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	for _, r := range cl.regions {
		st := cl.state[r]
		if st.status == "REVOKED" {
			continue
		}
		st.status = "REVOKING"
		k := &st.keys[len(st.keys)-1]
		k.Status, k.UserMessage, k.UpdatedAt = "REVOKING", "", now
	}
	cl.pending = s.polls
	return 0, 0, ""
}

// poll counts a GET and settles transitional regions when their time is up.
func (s *Server) poll(cl *cluster) {
	if !cl.busy() {
		return
	}
	cl.pending--
	if cl.pending > 0 {
		return
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	for _, r := range cl.regions {
		st := cl.state[r]
		if !transitional(st.status) {
			continue
		}
		msg, failed := s.fail[r]
		delete(s.fail, r)
		cur := &st.keys[len(st.keys)-1]
		var next string
		switch st.status {
		case "ENABLING":
			next = "ENABLED"
			if failed {
				next = "ENABLE_FAILED"
			}
		case "ROTATING":
			next = "ENABLED"
			if failed {
				next = "ROTATE_FAILED"
			}
		case "REVOKING":
			next = "REVOKED"
			if failed {
				next = "REVOKE_FAILED"
			}
		}
		st.status = next
		cur.Status, cur.UpdatedAt = next, now
		if failed {
			cur.UserMessage = msg
		}
		if next == "ENABLED" {
			for i := range st.keys[:len(st.keys)-1] {
				if k := &st.keys[i]; k.Status == "ENABLED" || k.Status == "ROTATING" || k.Status == "ROTATE_FAILED" {
					k.Status, k.UpdatedAt = "DISABLED", now
				}
			}
		}
	}
}

func (cl *cluster) info() clusterInfo {
	out := clusterInfo{RegionInfos: []regionInfo{}}
	rank := func(st string) int {
		switch {
		case strings.HasSuffix(st, "_FAILED"):
			return 3
		case transitional(st):
			return 2
		case st == "DISABLED":
			return 0
		}
		return 1
	}
	for _, r := range cl.regions {
		st := cl.state[r]
		keys := slices.Clone(st.keys)
		if keys == nil {
			keys = []keyInfo{}
		}
		out.RegionInfos = append(out.RegionInfos, regionInfo{Region: r, Status: st.status, KeyInfos: keys})
		if out.Status == "" || rank(st.status) > rank(out.Status) {
			out.Status = st.status
		}
	}
	return out
}
