package gcpkms

// Exports for the external tests.
var (
	Classify = classify
	WrapErr  = wrapErr
)
