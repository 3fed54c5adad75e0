package toolspec

// Registry kinds, as RegistryEvent names them.
const (
	KindTool    = "tool"
	KindDataset = "dataset"
)

// RegistryEvent is a tool or dataset record as a watch of the registry
// reports it, or its deletion: Tool or Dataset is set for a record, neither
// for a deletion.
type RegistryEvent struct {
	Kind    string // KindTool or KindDataset
	Name    string
	Tool    *Tool
	Dataset *Dataset
}

// RegistryBatch is what a watch of a registry kind reports at once: its
// changes, and Rev, the revision up to which it has reported every change.
// A batch with no events is a progress report, asked for or not.
type RegistryBatch struct {
	Rev    int64
	Events []RegistryEvent
}

// ScheduleEvent is a change to a schedule as a watch reports it: Schedule
// is nil when it was deleted.
type ScheduleEvent struct {
	ID       string
	Schedule *Schedule
}
