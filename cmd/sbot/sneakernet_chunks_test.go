package main

import "testing"

// TestSneakernetSmallChunks runs the sneakernet tests with chunks of a few
// messages, so that several chunks are in flight when a message is
// refused: the import must still stop at the bad line, having stored
// exactly the valid messages before it.
func TestSneakernetSmallChunks(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		old := chunkLines
		chunkLines = n
		t.Run("import", TestSneakernet)
		t.Run("bad bundles", TestSneakernetBadBundles)
		chunkLines = old
	}
}
