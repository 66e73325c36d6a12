package query

// SetMaxSorted lowers the sort bound for a test.
func SetMaxSorted(n int) (restore func()) {
	old := maxSorted
	maxSorted = n
	return func() { maxSorted = old }
}

// SetRawFilters turns the filters on stored JSON on or off for a test.
func SetRawFilters(on bool) (restore func()) {
	old := rawFilters
	rawFilters = on
	return func() { rawFilters = old }
}
