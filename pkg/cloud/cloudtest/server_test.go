package cloudtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud/cloudtest"
)

// These tests speak raw HTTP to the fake, independently of package cloud.

type answer struct {
	Status int
	Body   map[string]any
}

func do(t *testing.T, s *cloudtest.Server, method, path, body string, hdr map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIKey())
	req.Header.Set("Cc-Version", "2024-09-16")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	a.Status = resp.StatusCode
	if err := json.NewDecoder(resp.Body).Decode(&a.Body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return a
}

const (
	cmek   = "/api/v1/clusters/c1/cmek"
	awsKey = `{"type":"AWS_KMS","uri":"arn:aws:kms:us-east-1:111122223333:key/k1","auth_principal":"arn:aws:iam::111122223333:role/r"}`
)

func specs(regions ...string) string {
	var parts []string
	for _, r := range regions {
		parts = append(parts, `{"region":"`+r+`","key_spec":`+awsKey+`}`)
	}
	return `{"region_specs":[` + strings.Join(parts, ",") + `]}`
}

func newServer(t *testing.T) *cloudtest.Server {
	s := cloudtest.New(t, cloudtest.Cluster{ID: "c1", Regions: []string{"us-east-1", "us-west-2"}})
	if u, err := url.Parse(s.URL()); err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("server at %s, want 127.0.0.1", s.URL())
	}
	return s
}

func TestHeadersChecked(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		hdr    map[string]string
		status int
		msg    string
	}{
		{map[string]string{"Authorization": ""}, 401, "missing bearer token"},
		{map[string]string{"Authorization": "Bearer nope"}, 401, "invalid API key"},
		{map[string]string{"Cc-Version": ""}, 400, "2022-03-31"},
		{map[string]string{"Cc-Version": "2022-03-31"}, 400, "2024-09-16"},
		{nil, 200, ""},
	} {
		a := do(t, s, "GET", cmek, "", tc.hdr)
		if a.Status != tc.status {
			t.Errorf("headers %v: status %d, want %d", tc.hdr, a.Status, tc.status)
		}
		if msg, _ := a.Body["message"].(string); !strings.Contains(msg, tc.msg) {
			t.Errorf("headers %v: message %q, want %q", tc.hdr, msg, tc.msg)
		}
	}
	if n := s.Count("GET", 401); n != 2 {
		t.Errorf("request log counts %d 401s, want 2", n)
	}
}

func TestStateMachine(t *testing.T) {
	s := newServer(t)
	s.SetPolls(2)
	if a := do(t, s, "POST", cmek, specs("us-east-1"), nil); a.Status != 400 || !strings.Contains(a.Body["message"].(string), "missing us-west-2") {
		t.Fatalf("POST with a region missing: %+v", a)
	}
	if a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2", "eu-west-1"), nil); a.Status != 400 {
		t.Fatalf("POST with an extra region: %+v", a)
	}
	a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2"), nil)
	if a.Status != 200 || a.Body["status"] != "ENABLING" {
		t.Fatalf("POST: %+v", a)
	}
	if a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2"), nil); a.Status != 503 {
		t.Fatalf("POST while enabling: %+v, want 503 busy", a)
	}
	if a := do(t, s, "GET", cmek, "", nil); a.Body["status"] != "ENABLING" {
		t.Fatalf("first poll: %v", a.Body["status"])
	}
	if a := do(t, s, "GET", cmek, "", nil); a.Body["status"] != "ENABLED" {
		t.Fatalf("second poll: %v", a.Body["status"])
	}
	if a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2"), nil); a.Status != 400 || !strings.Contains(a.Body["message"].(string), "already enabled") {
		t.Fatalf("second POST: %+v", a)
	}
	if a := do(t, s, "PUT", cmek, specs("us-west-2"), nil); a.Status != 200 || s.RegionStatus("us-west-2") != "ROTATING" || s.RegionStatus("us-east-1") != "ENABLED" {
		t.Fatalf("PUT: %+v", a)
	}
	do(t, s, "GET", cmek, "", nil)
	do(t, s, "GET", cmek, "", nil)
	if got := strings.Join(s.KeyStatuses("us-west-2"), ","); got != "DISABLED,ENABLED" {
		t.Errorf("us-west-2 keys after rotation: %s", got)
	}
	if a := do(t, s, "PATCH", cmek, `{"action":"DESTROY"}`, nil); a.Status != 400 {
		t.Errorf("PATCH DESTROY: %+v", a)
	}
	s.FailRegion("us-east-1", "kms said no")
	if a := do(t, s, "PATCH", cmek, `{"action":"REVOKE"}`, nil); a.Status != 200 || a.Body["status"] != "REVOKING" {
		t.Fatalf("PATCH: %+v", a)
	}
	do(t, s, "GET", cmek, "", nil)
	a = do(t, s, "GET", cmek, "", nil)
	if a.Body["status"] != "REVOKE_FAILED" || s.RegionStatus("us-east-1") != "REVOKE_FAILED" || s.RegionStatus("us-west-2") != "REVOKED" {
		t.Fatalf("after a failed revoke: %+v", a.Body)
	}
	ri := a.Body["region_infos"].([]any)[0].(map[string]any)
	ki := ri["key_infos"].([]any)[0].(map[string]any)
	if ki["user_message"] != "kms said no" || ki["status"] != "REVOKE_FAILED" {
		t.Errorf("failed key info: %v", ki)
	}
	do(t, s, "PATCH", cmek, `{"action":"REVOKE"}`, nil)
	do(t, s, "GET", cmek, "", nil)
	do(t, s, "GET", cmek, "", nil)
	if s.RegionStatus("us-east-1") != "REVOKED" {
		t.Errorf("retry of the revoke: %s", s.RegionStatus("us-east-1"))
	}
	if a := do(t, s, "PATCH", cmek, `{"action":"REVOKE"}`, nil); a.Status != 400 {
		t.Errorf("revoke twice: %+v", a)
	}
	if a := do(t, s, "PUT", cmek, specs("us-west-2"), nil); a.Status != 400 {
		t.Errorf("PUT after revoke: %+v", a)
	}
}

func TestFaults(t *testing.T) {
	s := newServer(t)
	s.Busy(1)
	s.GETErrors(1)
	s.IAMDenied(1)
	for _, want := range []int{503, 500, 200} {
		if a := do(t, s, "GET", cmek, "", nil); a.Status != want {
			t.Errorf("GET: %d, want %d", a.Status, want)
		}
	}
	if a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2"), nil); a.Status != 403 || a.Body["code"] != float64(7) {
		t.Errorf("POST: %+v, want 403 code 7", a)
	}
	if a := do(t, s, "POST", cmek, specs("us-east-1", "us-west-2"), nil); a.Status != 200 {
		t.Errorf("POST after the fault: %+v", a)
	}
	s.EchoAuth(true)
	if a := do(t, s, "GET", "/api/v1/clusters/nope/cmek", "", nil); a.Status != 404 || !strings.Contains(a.Body["message"].(string), "Bearer "+s.APIKey()) {
		t.Errorf("echo: %+v", a)
	}
}

func TestBackupPages(t *testing.T) {
	s := newServer(t)
	s.SetPageSize(2)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		s.AddBackup(id, t0.Add(time.Duration(i)*time.Hour))
	}
	var ids []string
	page, pages := "", 0
	for {
		q := url.Values{"pagination.limit": {"10"}, "start_time": {t0.Add(time.Hour).Format(time.RFC3339)}}
		if page != "" {
			q.Set("pagination.page", page)
		}
		a := do(t, s, "GET", "/api/v1/clusters/c1/backups?"+q.Encode(), "", nil)
		if a.Status != 200 {
			t.Fatalf("page %d: %+v", pages, a)
		}
		pages++
		for _, b := range a.Body["backups"].([]any) {
			ids = append(ids, b.(map[string]any)["id"].(string))
		}
		page, _ = a.Body["pagination"].(map[string]any)["next_page"].(string)
		if page == "" {
			break
		}
	}
	if strings.Join(ids, "") != "bcde" || pages != 2 {
		t.Errorf("backups %v in %d pages, want bcde in 2", ids, pages)
	}
	if a := do(t, s, "GET", "/api/v1/clusters/c1/backups?pagination.page=garbage", "", nil); a.Status != 400 {
		t.Errorf("bad page token: %+v", a)
	}
}
