// Package cloud is a small, typed client for the part of the CockroachDB
// Cloud API that cmekctl uses: the CMEK endpoints
// (/api/v1/clusters/{cluster_id}/cmek: GET, POST, PUT, PATCH), the cluster
// (/api/v1/clusters/{cluster_id}: GET, and PATCH to add regions) and the
// managed backups list (/api/v1/clusters/{cluster_id}/backups), API version
// 2024-09-16. Its types mirror the official OpenAPI spec's schemas with the
// same JSON field names; pkg/cloud/contract_test.go checks every exchange
// against that spec.
//
// # Calling it from a command
//
//	c, err := cloud.New(cloud.Options{
//		Server:  opts.Server,                    // COCKROACH_SERVER / --server; "" = https://cockroachlabs.cloud
//		APIKey:  cloud.NewSecret(key),           // COCKROACH_API_KEY / --api-key-file
//		Logf:    func(f string, a ...any) { fmt.Fprintf(io.ErrOut, "cmekctl: "+f+"\n", a...) },
//	})
//	// enable: check first that CMEK is not on (a 400 is retried for 10 minutes)
//	info, err := c.GetCMEK(ctx, id)
//	spec, err := cloud.SpecFromURI(uri, principal)     // per region; resolve vault-keymgmt:// first
//	info, err = c.EnableCMEK(ctx, id, []cloud.RegionSpec{{Region: r, KeySpec: spec}})
//	info, err = c.Wait(ctx, id, cloud.WaitOptions{Timeout: opts.Timeout, Progress: show}) // unless --no-wait
//	// rotate cmek: c.UpdateCMEK(ctx, id, onlyTheRotatedRegions), then Wait
//	// revoke:      c.RevokeCMEK(ctx, id), then Wait
//	// status:      c.GetCMEK; RegionInfo.Current(), KeyInfos (past keys), URIFromSpec(k.Spec)
//	// verify-destroyed: GetCMEK, every region REVOKED, then each KeyInfo's URIFromSpec(k.Spec)
//	//              opened through the provider registry and Described
//	// backup-keys list: c.ListBackups(ctx, id, start, end) and ClusterInfo.EnabledAt()
//
// # Errors
//
// Every error matches at most one kind with errors.Is, for the exit-code
// table: ErrAuth (401/403), ErrNotFound (404), ErrRejected (other 4xx but
// 429, with the API's message), ErrFailed (a *_FAILED status; *FailedError
// carries the region and its user_message), ErrTimeout (Wait), ErrUnavailable
// (429, 5xx or network errors after the retries, or 503 on a write).
// *APIError carries the HTTP status and the API's code, message and
// details. Local validation errors (empty cluster ID, no region specs, a
// URI the Cloud cannot take) match none of them: they are usage errors.
//
// # Retries, as the vendor's Terraform provider does
//
//   - GET: network errors (but TLS-certificate, redirect, scheme and header
//     errors), 429 and 5xx (but 501): GETAttempts tries, 1 s doubling to
//     30 s, or what Retry-After says on 429 and 503 (capped at
//     MaxRetryAfter).
//   - PUT, PATCH: never retried.
//   - POST (enable): 400, 401 and 403 are retried for IAMPropagationWindow
//     (10 min) from the first of them, since cloud IAM grants take time to
//     propagate; on 503 it waits for the cluster to be ready
//     (WaitClusterReady: GET cluster until CREATED, up to 2 h) and posts
//     again. Each retry is reported through Logf and says why.
//   - Wait polls GET with backoff 0.5 s doubling to 10 s, for up to 2 h by
//     default, until every region is ENABLED, DISABLED or REVOKED. A
//     *_FAILED status ends it with a *FailedError; a GET still failing with
//     429, 5xx or a network error after its retries is polled again; any
//     other GET error ends it.
//
// docs/cloud.md lists where this differs from the Terraform provider, and
// why.
//
// Options.Now and Options.Sleep let tests run all of this on a fake clock.
//
// # Secrets
//
// The API key is a Secret: it prints as **redacted** in every format, in
// JSON and in slog; only Secret.Reveal returns it, and the client calls it
// for the Authorization header alone. Plain http is refused except to a
// loopback address. Error messages and details from the server, and every
// log line, are scrubbed of the key should a server echo it.
//
// pkg/cloud/cloudtest is a fake of these endpoints (state machine and fault
// injection) for tests.
package cloud
