package keyring

// The values of NodeResult.Action (what an operation did to a node) and
// PlanNode.Action (what it would do): the `action` enums of the JSON
// contract (docs/json.md). New values may be added within a schema version;
// none is renamed or removed.
const (
	ActionEnabled        = "enabled"
	ActionAlreadyEnabled = "already enabled"
	ActionRotated        = "rotated"
	ActionAlreadyDone    = "already done"
	ActionSkipped        = "skipped"
	ActionFailed         = "failed"
)

// Plan actions (--dry-run).
const (
	WouldEnable = "enable"
	WouldRotate = "rotate"
	WouldRecord = "record"
	WouldSkip   = "skip"
)

// ResultActions and PlanActions are the enums, in docs/json.md's order.
var (
	ResultActions = []string{ActionEnabled, ActionAlreadyEnabled, ActionRotated, ActionAlreadyDone, ActionSkipped, ActionFailed}
	PlanActions   = []string{WouldEnable, WouldRotate, WouldRecord, WouldSkip}
)
