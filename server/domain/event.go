package domain

// EventType is what an event in a subject's history records. The values are
// stored (in the history, the change feed and audit exports), so they never
// change; the API maps them to its EventType enum.
type EventType string

// The event types. Access and export events change nothing, so they add
// nothing to the change feed; nor do signals events, which only record what
// the decisions already in the feed were encoded as. Every other event does.
const (
	EventUpdate   EventType = "update"
	EventWithdraw EventType = "withdraw"
	EventAccess   EventType = "access"   // an operator read the subject's history
	EventExport   EventType = "export"   // the subject's data was exported
	EventRestrict EventType = "restrict" // processing restricted
	EventLift     EventType = "lift"     // restriction lifted
	EventLink     EventType = "link"     // a visitor was linked to a user (on both)
	EventMinor    EventType = "minor"    // marked as a minor, or the mark cleared
	EventGuardian EventType = "guardian" // a guardian confirmed a minor's decisions
	EventErase    EventType = "erase"    // only in the change feed: the subject was erased
	EventSignals  EventType = "signals"  // IAB strings built from the decisions were recorded
)

// InFeed reports whether an event of this type goes to the change feed.
func (t EventType) InFeed() bool {
	return t != EventAccess && t != EventExport && t != EventSignals
}
