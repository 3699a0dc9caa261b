package cloudtest

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AddBackup adds a managed backup of the primary cluster.
func (s *Server) AddBackup(id string, asOf time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.clusters[s.primary]
	cl.backups = append(cl.backups, backup{ID: id, AsOfTime: asOf.UTC().Format(time.RFC3339Nano), at: asOf})
	slices.SortStableFunc(cl.backups, func(a, b backup) int { return a.at.Compare(b.at) })
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request, cl *cluster, fail func(int, int, string, ...any)) {
	q := r.URL.Query()
	limit := s.pageSize
	if v := q.Get("pagination.limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fail(http.StatusBadRequest, codeInvalidArgument, "invalid pagination.limit %q", v)
			return
		}
		if n > 0 {
			limit = min(n, s.pageSize)
		}
	}
	var start, end time.Time
	for name, dst := range map[string]*time.Time{"start_time": &start, "end_time": &end} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(http.StatusBadRequest, codeInvalidArgument, "invalid %s %q", name, v)
				return
			}
			*dst = t
		}
	}
	var match []backup
	for _, b := range cl.backups {
		if (start.IsZero() || !b.at.Before(start)) && (end.IsZero() || b.at.Before(end)) {
			match = append(match, b)
		}
	}
	if q.Get("pagination.sort_order") == "DESC" {
		slices.Reverse(match)
	}
	offset := 0
	if tok := q.Get("pagination.page"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(raw), "offset:") || n < 0 || n > len(match) {
			fail(http.StatusBadRequest, codeInvalidArgument, "invalid pagination.page %q", tok)
			return
		}
		offset = n
	}
	endIdx := min(offset+limit, len(match))
	page := struct {
		Backups    []backup          `json:"backups"`
		Pagination map[string]string `json:"pagination"`
	}{Backups: append([]backup{}, match[offset:endIdx]...), Pagination: map[string]string{}}
	if endIdx < len(match) {
		page.Pagination["next_page"] = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(endIdx)))
	}
	if offset > 0 {
		page.Pagination["previous_page"] = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(max(offset-limit, 0))))
	}
	writeJSON(w, http.StatusOK, page)
}
