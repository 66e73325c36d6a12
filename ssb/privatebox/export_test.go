package privatebox

// Wire sizes for the tests, which build malformed boxes by hand.
const (
	NonceSize  = nonceSize
	SlotSize   = slotSize
	SlotsStart = slotsStart
	MinSize    = minSize
)
