package store

// Test knobs of the GCS backend: the first retry's wait, the list page size.
var (
	GCSBackoff  = &gcsBackoff
	GCSListPage = &gcsListPage
)

const GCSAttempts = gcsAttempts
