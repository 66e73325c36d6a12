package query

// SetMaxSorted lowers the sort bound for a test.
func SetMaxSorted(n int) (restore func()) {
	old := maxSorted
	maxSorted = n
	return func() { maxSorted = old }
}
