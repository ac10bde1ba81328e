package policy

// Capability names, as written in policies and in Request.Capability.
const (
	Read    = "read"
	List    = "list"
	Create  = "create"
	Update  = "update"
	Delete  = "delete"
	Destroy = "destroy"
	Rotate  = "rotate"
	Admin   = "admin"
	Deny    = "deny"
)

// capSet is a set of capabilities, one bit each.
type capSet uint16

const (
	capRead capSet = 1 << iota
	capList
	capCreate
	capUpdate
	capDelete
	capDestroy
	capRotate
	capAdmin
	capDeny
)

// capBit returns the bit for a capability name, or 0 if the name is not a
// capability. It does not allocate.
func capBit(name string) capSet {
	switch name {
	case Read:
		return capRead
	case List:
		return capList
	case Create:
		return capCreate
	case Update:
		return capUpdate
	case Delete:
		return capDelete
	case Destroy:
		return capDestroy
	case Rotate:
		return capRotate
	case Admin:
		return capAdmin
	case Deny:
		return capDeny
	}
	return 0
}

// noGrantReason returns the Decision.Reason used when nothing grants c. The
// strings are constants so that Evaluate does not allocate.
func noGrantReason(c capSet) string {
	switch c {
	case capRead:
		return "no rule grants read"
	case capList:
		return "no rule grants list"
	case capCreate:
		return "no rule grants create"
	case capUpdate:
		return "no rule grants update"
	case capDelete:
		return "no rule grants delete"
	case capDestroy:
		return "no rule grants destroy"
	case capRotate:
		return "no rule grants rotate"
	case capAdmin:
		return "no rule grants admin"
	}
	return ReasonUnknownCapability
}
