package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// Exit codes: one table for the whole tool. Scripts rely on them; never
// renumber one.
const (
	ExitOK             = 0
	ExitFailure        = 1
	ExitUsage          = 2
	ExitNoKeyring      = 3
	ExitCorrupt        = 4
	ExitPermissions    = 5
	ExitForeign        = 6
	ExitAlreadyEnabled = 7
	ExitRevokedKeyring = 8
	ExitLocked         = 9
	ExitPartial        = 10
	ExitNotFIPS        = 11
	ExitKeyRevoked     = 20
	ExitKeyDestroyed   = 21
	ExitMisuse         = 22
	ExitKMSUnavailable = 23
	ExitVerdictRevoked = 30
	ExitAccessible     = 31
	ExitInconclusive   = 32
	ExitCloudFailed    = 40
	ExitCloudTimeout   = 41
	ExitCloudAuth      = 42
	ExitNotRestorable  = 50
	ExitDrillFailed    = 60
	// The shared keyring store (--store).
	ExitStoreUnavailable = 70
	ExitStoreUnsafe      = 71
)

type exitRow struct {
	code int
	name string
	what string
}

var exitTable = []exitRow{
	{ExitOK, "ok", "success; verify-destroyed: DESTROYED (or REVOKED with --accept revoked)"},
	{ExitFailure, "error", "an error not listed below"},
	{ExitUsage, "usage", "bad flags or arguments, or a destructive verb without --yes in a script"},
	{ExitNoKeyring, "no-keyring", "no keyring in the directory given"},
	{ExitCorrupt, "corrupt", "the keyring, journal or input file is corrupt, truncated or of an unknown format version"},
	{ExitPermissions, "permissions", "the keyring or its directory is accessible to others, a symlink, or another user's"},
	{ExitForeign, "foreign", "the keyring or data belongs to another cluster, region or node"},
	{ExitAlreadyEnabled, "already-enabled", "CMEK is already enabled in that keyring, or on that Cloud cluster (--cloud)"},
	{ExitRevokedKeyring, "revoked-keyring", "the keyring is marked revoked: nothing is unlocked, decrypted or rotated; revoke: every keyring was revoked already and no file was left to purge"},
	{ExitLocked, "locked", "another cmekctl holds the keyring's lock"},
	{ExitPartial, "partial", "some nodes failed, or a rotation is half done: the hint names the command that finishes it"},
	{ExitNotFIPS, "not-fips", "--require-fips, and cmekctl is not a FIPS build running with GODEBUG=fips140=only"},
	{ExitKeyRevoked, "key-revoked", "the CMEK key refused: disabled, pending deletion or access denied (a node cannot start)"},
	{ExitKeyDestroyed, "key-destroyed", "the CMEK key is destroyed: its material is gone (a node cannot start)"},
	{ExitMisuse, "wrong-key", "a key or ciphertext does not authenticate: wrong --cmek, wrong key, tampered or moved data"},
	{ExitKMSUnavailable, "kms-unavailable", "the KMS did not answer (network, throttling, 5xx) after bounded retries"},
	{ExitVerdictRevoked, "verdict-revoked", "verify-destroyed: REVOKED (nothing unwraps, but the key could come back)"},
	{ExitAccessible, "verdict-accessible", "verify-destroyed: ACCESSIBLE (something still unwraps or decrypts)"},
	{ExitInconclusive, "verdict-inconclusive", "verify-destroyed: INCONCLUSIVE (a transient error stopped a check)"},
	{ExitCloudFailed, "cloud-failed", "the Cloud API reported a *_FAILED status"},
	{ExitCloudTimeout, "cloud-timeout", "the Cloud operation did not finish within --timeout"},
	{ExitCloudAuth, "cloud-auth", "the Cloud API refused the API key"},
	{ExitNotRestorable, "not-restorable", "a backup cannot be restored (its CMEK keys do not unwrap it)"},
	{ExitDrillFailed, "drill-failed", "a step of cmekctl drill did not behave as it should"},
	{ExitStoreUnavailable, "store-unavailable", "the shared keyring store (--store) did not answer, and no usable local cache"},
	{ExitStoreUnsafe, "store-unsafe", "store check: the store ignores conditional writes or does not read its own writes"},
	{ExitCheckFailed, "check-failed", "status --check: a node is unprotected, revoked, mid-rotation or behind its region, a rotation is overdue, or a CMEK key is not enabled"},
	{128 + 1, "sighup", "interrupted by SIGHUP (128 + 1); the hint says whether anything was changed"},
	{128 + 2, "sigint", "interrupted by SIGINT, Ctrl-C (128 + 2); a partial output is removed, never sealed (version and exit-codes do not catch signals: they end by the signal, which a shell reports the same way)"},
	{128 + 15, "sigterm", "interrupted by SIGTERM (128 + 15); as for SIGINT"},
}

// ExitCodesHelp is the exit-code table as text.
func ExitCodesHelp() string {
	var b strings.Builder
	for _, r := range exitTable {
		fmt.Fprintf(&b, "  %3d  %-21s %s\n", r.code, r.name, r.what)
	}
	return b.String()
}

// ExitError carries an exit code and an optional hint line.
type ExitError struct {
	Code int
	Err  error
	Hint string
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// exitf returns an error with an exit code.
func exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// usageError is a usage error with a hint.
func usageError(hint, format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...), Hint: hint}
}

// ExitCode maps an error to the exit-code table, in one place.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code != 0 {
		return ee.Code
	}
	var se *silentError
	if errors.As(err, &se) {
		return se.code
	}
	var ie *InterruptError
	if errors.As(err, &ie) {
		return ie.Code()
	}
	switch {
	case errors.Is(err, keyring.ErrNotTmpfs), errors.Is(err, keyring.ErrSecretURI), errors.Is(err, keyring.ErrUsage):
		return ExitUsage
	case errors.Is(err, keyring.ErrPartial):
		return ExitPartial
	case errors.Is(err, keyring.ErrNotFound):
		return ExitNoKeyring
	case errors.Is(err, keyring.ErrCorrupt), errors.Is(err, keyring.ErrVersion), errors.Is(err, keyring.ErrNotData):
		return ExitCorrupt
	case errors.Is(err, keyring.ErrPermissions):
		return ExitPermissions
	case errors.Is(err, keyring.ErrForeign):
		return ExitForeign
	case errors.Is(err, keyring.ErrAlreadyEnabled):
		return ExitAlreadyEnabled
	case errors.Is(err, keyring.ErrRevoked):
		return ExitRevokedKeyring
	case errors.Is(err, keyring.ErrLocked):
		return ExitLocked
	case errors.Is(err, keyring.ErrPending), errors.Is(err, keyring.ErrSplitRegion):
		return ExitPartial
	case errors.Is(err, stream.ErrAuth), errors.Is(err, stream.ErrTruncated), errors.Is(err, stream.ErrTrailingData):
		return ExitMisuse
	case errors.Is(err, cluster.ErrBusy):
		return ExitLocked
	case errors.Is(err, cluster.ErrUnacked):
		return ExitPartial
	case errors.Is(err, store.ErrURI):
		return ExitUsage
	case errors.Is(err, store.ErrNotEnforced):
		return ExitStoreUnsafe
	case errors.Is(err, store.ErrUnavailable):
		return ExitStoreUnavailable
	case errors.Is(err, store.ErrCorrupt):
		return ExitCorrupt
	case errors.Is(err, cloud.ErrFailed):
		return ExitCloudFailed
	case errors.Is(err, cloud.ErrTimeout):
		return ExitCloudTimeout
	case errors.Is(err, cloud.ErrAuth):
		return ExitCloudAuth
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		if pe.Code == "Permissions" {
			return ExitPermissions
		}
		switch pe.Class {
		case provider.Revoked:
			return ExitKeyRevoked
		case provider.Destroyed:
			return ExitKeyDestroyed
		case provider.Misuse:
			return ExitMisuse
		case provider.Transient:
			return ExitKMSUnavailable
		}
	}
	return ExitFailure
}

// hintFor returns advice for an error, printed on its own line.
func hintFor(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) && ee.Hint != "" {
		return ee.Hint
	}
	var he *keyring.HintError
	if errors.As(err, &he) && he.Hint != "" {
		return he.Hint
	}
	switch ExitCode(err) {
	case ExitKeyRevoked:
		if isKeyNotFound(err) {
			return notFoundHint
		}
		return "the CMEK key is disabled, pending deletion, or this identity lost access to it: check it with cmekctl kms describe URI"
	case ExitKeyDestroyed:
		return "the CMEK key's material is gone: data under it cannot be recovered"
	case ExitMisuse:
		return "a key or ciphertext did not authenticate: the wrong key (cmekctl status shows the CMEK URI that wrapped this keyring), or input that was moved, damaged or tampered with"
	case ExitKMSUnavailable:
		return "the KMS did not answer; nothing was written; retry later"
	case ExitPartial:
		if errors.Is(err, keyring.ErrSplitRegion) {
			return "run cmekctl rotate store-key with every keyring of the region first (cmekctl status names the command): it brings every node onto one new store key"
		}
		if errors.Is(err, keyring.ErrPending) {
			return "finish the interrupted operation the message names first; cmekctl status shows which nodes are mid-rotation"
		}
		return "run the same command again: it finishes the nodes that are left, and does not redo the others"
	case ExitLocked:
		return "another cmekctl is working on this keyring (the message names it); run again when it has finished, or give --lock-wait 5m to wait for it"
	case ExitStoreUnsafe:
		return "this store cannot keep a cluster's keyrings safe: use AWS S3, GCS, etcd, or an S3 server that enforces If-Match and If-None-Match"
	case ExitStoreUnavailable:
		return "the store did not answer; nothing is known to have changed; retry, or check the URI's endpoint and credentials"
	case ExitCloudFailed:
		return "the region's user_message above says why (often the key's IAM grant); fix it and run the same command again"
	case ExitCloudTimeout:
		return "the operation may still finish in the Cloud: check with cmekctl status --cloud --cluster-id ID"
	case ExitCloudAuth:
		return "check the API key (COCKROACH_API_KEY or --api-key-file): it must belong to a service account with access to this cluster"
	}
	switch {
	case errors.Is(err, cloud.ErrNotFound):
		return "check --cluster-id and --server: the Cloud API knows no such cluster"
	case cloudBusyWrite(err):
		return "the cluster is busy with another operation, and a write is never retried: run the same command again once cmekctl status --cloud shows every region settled"
	case errors.Is(err, cloud.ErrUnavailable):
		return "the Cloud API did not answer, was rate-limiting (429), or the cluster stayed busy; nothing is known to have changed; retry later"
	}
	return ""
}

// cloudBusyWrite: a POST, PUT or PATCH answered 503 (the cluster is busy).
func cloudBusyWrite(err error) bool {
	var ae *cloud.APIError
	return errors.As(err, &ae) && ae.Status == 503 && ae.Method != "GET"
}
