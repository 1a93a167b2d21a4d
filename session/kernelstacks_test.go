//go:build linux

package session

import "testing"

// TestImagesFollowTheirProcesses: an image shared by a parent and its
// forked child lives until both are gone; an exec moves a process to a new
// image; the last holder's table waits for TakeSettled only once the agent
// reads settled counts.
func TestImagesFollowTheirProcesses(t *testing.T) {
	s := &Session{images: make(map[uint64]*imageStacks), imageOf: make(map[uint32]uint64), goneImages: make(map[uint64]*imageStacks)}
	const img, child = 0xa, 0xb
	parent := s.imageFor(100, img)
	parent.sites[1] = siteStack{}
	if s.imageFor(101, img) != parent || s.imageFor(100, img) != parent || parent.pids != 2 {
		t.Fatalf("parent and forked child: %d holders, want one table held twice", parent.pids)
	}
	s.procGone(100)
	if s.images[img] == nil {
		t.Fatal("the child's image went with its parent")
	}
	// The child execs: its records now name a new image.
	exec := s.imageFor(101, child)
	if exec == parent || s.images[img] != nil || len(s.goneImages) != 0 {
		t.Fatalf("after exec: old image kept %v, set aside %d (nobody reads settled counts)", s.images[img] != nil, len(s.goneImages))
	}

	s.takesSettled = true
	again := s.imageFor(102, img)
	again.sites[1] = siteStack{}
	s.procGone(102)
	if s.goneImages[img] != again {
		t.Fatal("the last holder's table is not kept for the settled counts")
	}
	s.procGone(102) // twice: nothing to let go of
	s.procGone(101)
	if len(s.images) != 0 || len(s.imageOf) != 0 {
		t.Fatalf("images %v, holders %v left after every process ended", s.images, s.imageOf)
	}
}
